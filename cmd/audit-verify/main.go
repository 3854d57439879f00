// Command audit-verify recomputes the gateway's audit hash chains and names
// the first broken or missing link of each. It reads either a database
// (-uri, -db) or an export file (-file: what GET /audit/export streams, see
// internal/audit/export.go), so an auditor can verify an export offline; an
// export cut short, or a line that is not JSON, is an error. Exit status 0:
// every chain verified; 1: a break; 2: an error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit-verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "an export (GET /audit/export) to verify offline")
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
	var err error
	switch {
	case *file != "":
		heads, events, err = readExport(*file)
	case *uri != "":
		heads, events, err = readStore(ctx, *uri, *db, *from, *to)
	default:
		err = errors.New("give -file, or -uri (MONGODB_URI); the embedded store is locked by its gateway: ask it with the auditIntegrity query")
	}
	if err != nil {
		fmt.Fprintln(stderr, "audit-verify:", err)
		return 2
	}
	rep := audit.Verify(heads, events)
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")
	_ = out.Encode(rep)
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

func readExport(path string) ([]audit.ChainHead, []domain.AuditEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return audit.ReadExport(f)
}

func readStore(ctx context.Context, uri, db, from, to string) ([]audit.ChainHead, []domain.AuditEvent, error) {
	f, err := time.Parse(time.DateOnly, from)
	if err != nil {
		return nil, nil, fmt.Errorf("-from: %w", err)
	}
	t, err := time.Parse(time.DateOnly, to)
	if err != nil {
		return nil, nil, fmt.Errorf("-to: %w", err)
	}
	st, err := store.Open(ctx, store.Options{URI: uri, Database: db})
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = st.Close(context.Background()) }()
	// The verifier reads as the operator would: every chain.
	hs, events, err := st.AuditChains(ctx, domain.Principal{Subject: "audit-verify", Role: domain.RoleCoordinator}, f, t)
	if err != nil {
		return nil, nil, err
	}
	heads := make([]audit.ChainHead, 0, len(hs))
	for _, h := range hs {
		heads = append(heads, audit.ChainHead{Chain: h.Chain, Seq: h.Seq, Hash: h.Hash})
	}
	return heads, events, nil
}
