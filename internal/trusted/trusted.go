// Package trusted binds partner clients to allow-lists of GraphQL documents
// (trusted documents): a bound client may send only operations registered
// for it, by hash or as the exact registered text; anything else is refused
// before parsing. Unbound clients keep the ordinary limits.
package trusted

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
				allowed[strings.ToLower(h)] = true
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
	_, ok := r.clients[client]
	return r != nil && ok
}

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
// clients, before anything parses them.
func (e Extension) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
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
	hash := ""
	if pq, ok := raw.Extensions["persistedQuery"].(map[string]any); ok {
		hash, _ = pq["sha256Hash"].(string)
		hash = strings.ToLower(hash)
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
