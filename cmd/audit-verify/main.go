// Command audit-verify recomputes the gateway's audit hash chains and names
// the first broken or missing link of each. It reads either a database
// (-uri, -db) or an export file (-file: what GET /audit/export streams, see
// internal/audit/export.go), so an auditor can verify an export offline.
//
// An export is checked against the gateway's signing keys (-jwks: a JWKS
// file, or the URL of the gateway's /.well-known/jwks.json): the end line's
// signature, the digest of every line before it, the signed chain list and
// the counts; an export failing one is refused, and the check that failed
// is named. An export cut short, or a line that is not JSON, is an error.
//
// Read from the database (-uri), a period that audit retention pruned is
// vouched for by its days' signed checkpoints, checked with -jwks too;
// without -jwks a checkpoint is not taken on trust (a CHECKPOINT break).
//
// Exit status 0: every chain verified; 1: a break or a refused export; 2:
// an error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/workflow"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit-verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "an export (GET /audit/export) to verify offline")
	jwks := fs.String("jwks", "", "the gateway's signing keys, a JWKS file or the URL of its /.well-known/jwks.json: needed with -file, and with -uri for a period that retention pruned")
	uri := fs.String("uri", getenv("MONGODB_URI"), "the database (MONGODB_URI)")
	db := fs.String("db", envOr(getenv, "MONGODB_DATABASE", "secondopinion"), "the database name (MONGODB_DATABASE)")
	today := time.Now().UTC().Format(time.DateOnly)
	from := fs.String("from", today, "first UTC day (YYYY-MM-DD)")
	to := fs.String("to", today, "last UTC day (YYYY-MM-DD)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var heads []audit.ChainHead
	var events []domain.AuditEvent
	var checkpoints []audit.Checkpoint
	var keys jose.JSONWebKeySet
	var err, refused error
	switch {
	case *file != "" && *jwks == "":
		err = errors.New("-file needs -jwks: an export is trusted only as signed by the gateway's key (a JWKS file, or the URL of its /.well-known/jwks.json)")
	case *file != "":
		heads, events, err = readExport(ctx, *file, *jwks)
		var r *audit.RefusedError
		if errors.As(err, &r) {
			refused, err = err, nil
		}
	case *uri != "":
		heads, events, checkpoints, err = readStore(ctx, *uri, *db, *from, *to)
		if err == nil && len(checkpoints) > 0 {
			if *jwks == "" {
				fmt.Fprintln(stderr, "audit-verify: the period has pruned days; their checkpoints are verified only with -jwks")
			} else if keys, err = loadKeys(ctx, *jwks); err != nil {
				err = fmt.Errorf("-jwks: %w", err)
			}
		}
	default:
		err = errors.New("give -file, or -uri (MONGODB_URI); the embedded store is locked by its gateway: ask it with the auditIntegrity query")
	}
	if err != nil {
		fmt.Fprintln(stderr, "audit-verify:", err)
		return 2
	}
	rep := audit.VerifyPeriod(heads, events, checkpoints, keys)
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")
	_ = out.Encode(rep)
	if refused != nil {
		// The chains were still recomputed above, to show where an edit is.
		fmt.Fprintln(stderr, "audit-verify:", refused)
		return 1
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

func readExport(ctx context.Context, path, jwks string) ([]audit.ChainHead, []domain.AuditEvent, error) {
	keys, err := loadKeys(ctx, jwks)
	if err != nil {
		return nil, nil, fmt.Errorf("-jwks: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return audit.ReadExport(f, keys)
}

// maxJWKS bounds a key set read from a file or a URL.
const maxJWKS = 1 << 20

// loadKeys reads a JWKS from a file or, given an http(s) URL, fetches that
// URL and nothing else: no redirect is followed, since the auditor named
// the one place to trust; plain http only for a loopback address.
func loadKeys(ctx context.Context, src string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	var body []byte
	if u, err := url.Parse(src); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return set, errors.New("a JWKS URL is https (plain http only on a loopback address)")
		}
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return set, err
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirected: give the final URL of the key set")
		}}
		res, err := client.Do(req)
		if err != nil {
			return set, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return set, fmt.Errorf("GET %s: %s", u.Redacted(), res.Status)
		}
		if body, err = io.ReadAll(io.LimitReader(res.Body, maxJWKS+1)); err != nil {
			return set, err
		}
	} else {
		f, err := os.Open(src)
		if err != nil {
			return set, err
		}
		defer f.Close()
		if body, err = io.ReadAll(io.LimitReader(f, maxJWKS+1)); err != nil {
			return set, err
		}
	}
	if len(body) > maxJWKS {
		return set, fmt.Errorf("larger than %d bytes", maxJWKS)
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return set, fmt.Errorf("not a JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return set, errors.New("the key set is empty")
	}
	return set, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func readStore(ctx context.Context, uri, db, from, to string) ([]audit.ChainHead, []domain.AuditEvent, []audit.Checkpoint, error) {
	f, err := time.Parse(time.DateOnly, from)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-from: %w", err)
	}
	t, err := time.Parse(time.DateOnly, to)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-to: %w", err)
	}
	st, err := store.Open(ctx, store.Options{URI: uri, Database: db})
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() { _ = st.Close(context.Background()) }()
	// The verifier reads as the operator would: every chain.
	operator := domain.Principal{Subject: "audit-verify", Role: domain.RoleCoordinator}
	hs, events, err := st.AuditChains(ctx, operator, f, t)
	if err != nil {
		return nil, nil, nil, err
	}
	cps, err := st.AuditCheckpoints(ctx, operator, f, t)
	if err != nil {
		return nil, nil, nil, err
	}
	checkpoints := make([]audit.Checkpoint, 0, len(cps))
	for _, c := range cps {
		checkpoints = append(checkpoints, workflow.FromStoreCheckpoint(c))
	}
	return workflow.AuditHeads(hs), events, checkpoints, nil
}
