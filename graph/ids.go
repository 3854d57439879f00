package graph

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/loader"
	"github.com/secondopinion/gateway/internal/workflow"
)

// Global ids are opaque: base64url of "Type:rawID".

// GlobalID makes the API id of an object.
func GlobalID(typ, raw string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + raw))
}

// ParseGlobalID splits an API id into type and raw id.
func ParseGlobalID(id string) (typ, raw string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return "", "", false
	}
	typ, raw, ok = strings.Cut(string(b), ":")
	if !ok || typ == "" || raw == "" || len(raw) > 128 {
		return "", "", false
	}
	return typ, raw, true
}

// rawID returns the raw id of a global id of type typ. An id of another type
// or not ours is simply not found, like any object outside the scope.
func rawID(id, typ string) (string, error) {
	t, raw, ok := ParseGlobalID(id)
	if !ok || t != typ {
		return "", domain.ErrNotFound(strings.ToLower(typ))
	}
	return raw, nil
}

// optionalRawID is rawID for nullable filter arguments.
func optionalRawID(id *string, typ string) (*string, error) {
	if id == nil {
		return nil, nil
	}
	raw, err := rawID(*id, typ)
	if err != nil {
		return nil, domain.Errorf(domain.CodeBadUserInput, "not a %s id", typ)
	}
	return &raw, nil
}

func principal(ctx context.Context) (domain.Principal, error) { return domain.RequirePrincipal(ctx) }

// readable returns the principal if it holds scope.
func readable(ctx context.Context, scope domain.Scope) (domain.Principal, error) {
	p, err := principal(ctx)
	if err != nil {
		return p, err
	}
	return p, p.Require(scope)
}

func loaders(ctx context.Context) (*loader.Loaders, error) { return loader.From(ctx) }

func page(first *int, after *string) (workflow.Page, error) { return workflow.NewPage(first, after) }

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// orgRawID accepts an organisation's global id or its org id.
func orgRawID(id string) string {
	if raw, err := rawID(id, "Organization"); err == nil {
		return raw
	}
	return id
}
