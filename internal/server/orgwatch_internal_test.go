package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/domain"
)

type flipOrg struct{ active atomic.Bool }

func (f *flipOrg) Org(context.Context, string) (domain.OrgKind, bool, error) {
	return domain.OrgNetwork, f.active.Load(), nil
}

// A websocket opened while its org was active ends once the org is
// suspended: the org is checked again while the socket lives.
func TestAnOpenSocketEndsWhenItsOrgIsSuspended(t *testing.T) {
	dir := &flipOrg{}
	dir.active.Store(true)
	v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: []byte("0123456789abcdef0123456789abcdef")}}, AllowHS256: true, Orgs: dir})
	require.NoError(t, err)
	p := domain.Principal{Subject: "u", Role: domain.RolePartner, Org: "net-x"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchOrg(ctx, cancel, v, p, 5*time.Millisecond)

	time.Sleep(30 * time.Millisecond)
	require.NoError(t, ctx.Err(), "an active org keeps its socket")
	dir.active.Store(false)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		assert.Fail(t, "the socket of a suspended org was not closed")
	}
}
