// Package trusted binds partner clients to allow-lists of GraphQL documents
// (trusted documents): a bound client may send only operations registered
// for it, by hash or as the exact registered text; anything else is refused
// before parsing. Unbound clients keep the ordinary limits.
//
// A binding is only as strong as the client id: the partner's own identity
// provider writes azp / client_id. So each bound client must also be listed
// under its issuer's "clients" in JWT_TRUST_FILE, where the verifier refuses
// that issuer's tokens naming no bound client, another one or one in another
// letter case, and any other issuer's token naming it (see CheckIssuers).
package trusted

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/secondopinion/gateway/internal/domain"
)

// File is the TRUSTED_DOCUMENTS_FILE document. Each client (its token's azp
// or client_id) lists file patterns (relative to this file's folder, e.g.
// the operations kept under docs/) and "sha256:<hex>" hashes:
//
//	{"clients": {"euro-backoffice": ["../docs/partner/*.graphql", "sha256:9f86…"]}}
type File struct {
	Clients map[string][]string `json:"clients"`
}

// Registry holds the registered documents and the client bindings.
type Registry struct {
	docs    map[string]string          // sha256 hex → text
	clients map[string]map[string]bool // client id → allowed hashes
}

// Hash is the registration key of a document: hex SHA-256 of its exact text,
// as in the APQ extensions.persistedQuery.sha256Hash.
func Hash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// Load reads a bindings file and the documents it names.
func Load(path string) (*Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted documents: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("trusted documents %s: %w", path, err)
	}
	r := &Registry{docs: map[string]string{}, clients: map[string]map[string]bool{}}
	base := filepath.Dir(path)
	for client, entries := range f.Clients {
		if strings.TrimSpace(client) == "" || len(entries) == 0 {
			return nil, fmt.Errorf("trusted documents %s: client %q needs a non-empty list", path, client)
		}
		allowed := map[string]bool{}
		for _, e := range entries {
			if h, ok := strings.CutPrefix(e, "sha256:"); ok {
				if len(h) != 64 {
					return nil, fmt.Errorf("trusted documents %s: %q is not a sha256 hash", path, e)
				}
				allowed[NormalizeHash(h)] = true
				continue
			}
			matches, err := filepath.Glob(filepath.Join(base, e))
			if err != nil || len(matches) == 0 {
				return nil, fmt.Errorf("trusted documents %s: %q matches no file", path, e)
			}
			for _, m := range matches {
				text, err := os.ReadFile(m)
				if err != nil {
					return nil, fmt.Errorf("trusted documents: %w", err)
				}
				h := Hash(string(text))
				r.docs[h] = string(text)
				allowed[h] = true
			}
		}
		r.clients[client] = allowed
	}
	return r, nil
}

// Bound reports whether a client is bound to an allow-list.
func (r *Registry) Bound(client string) bool {
	if r == nil {
		return false
	}
	_, ok := r.clients[client]
	return ok
}

// Clients returns the bound client ids, sorted.
func (r *Registry) Clients() []string {
	if r == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(r.clients))
}

// CheckIssuers refuses a registry binding a client that no trusted issuer
// claims as its own (issuerOf is the verifier's ClientIssuer): such an
// issuer could leave the client out of its tokens and send any operation.
func (r *Registry) CheckIssuers(issuerOf func(client string) (issuer string, ok bool)) error {
	for _, c := range r.Clients() {
		if _, ok := issuerOf(c); !ok {
			return fmt.Errorf(`trusted documents: client %q is bound to documents but no issuer in JWT_TRUST_FILE lists it in "clients"; list it under its issuer so that issuer's tokens must name it`, c)
		}
	}
	return nil
}

// NormalizeHash is the one form hashes are compared in: lower-case hex, as
// Hash writes them.
func NormalizeHash(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// Extension is the gqlgen extension enforcing the bindings. Register it
// before the APQ extension, so a hash-only request resolves to the
// registered text.
type Extension struct {
	Registry *Registry
}

var (
	_ graphql.HandlerExtension          = Extension{}
	_ graphql.OperationParameterMutator = Extension{}
)

// ExtensionName implements graphql.HandlerExtension.
func (Extension) ExtensionName() string { return "TrustedDocuments" }

// Validate implements graphql.HandlerExtension.
func (Extension) Validate(graphql.ExecutableSchema) error { return nil }

func forbidden(msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": string(domain.CodeForbidden)}}
}

// MutateOperationParameters admits only registered documents from bound
// clients, before anything parses them. It also writes every APQ hash in
// the normal form, for every client: the APQ extension after it compares
// hashes as strings, so an upper-case hash of the very text sent failed
// there (as an internal error).
func (e Extension) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	hash := ""
	if pq, ok := raw.Extensions["persistedQuery"].(map[string]any); ok {
		if h, ok := pq["sha256Hash"].(string); ok {
			hash = NormalizeHash(h)
			pq["sha256Hash"] = hash
		}
	}
	r := e.Registry
	if r == nil {
		return nil
	}
	p, ok := domain.PrincipalFrom(ctx)
	if !ok || p.ClientID == "" {
		return nil
	}
	allowed, bound := r.clients[p.ClientID]
	if !bound {
		return nil
	}
	if raw.Query == "" {
		if hash == "" || !allowed[hash] {
			return forbidden("this client may send only its registered operations")
		}
		text, ok := r.docs[hash]
		if !ok {
			return forbidden("this operation is registered by hash only: send its full text")
		}
		raw.Query = text
		return nil
	}
	h := Hash(raw.Query)
	if !allowed[h] || (hash != "" && hash != h) {
		return forbidden("this client may send only its registered operations")
	}
	return nil
}
