package webhooks

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeResolver answers every name with addrs: a DNS name a partner
// registered that later points into our network.
type fakeResolver struct {
	addrs   []netip.Addr
	lookups atomic.Int32
}

func (f *fakeResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	f.lookups.Add(1)
	return f.addrs, nil
}

func TestDeliveryToANameResolvingIntoOurNetworkIsRefusedAtDialTime(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	port := u.Port()
	local := netip.MustParseAddr("127.0.0.1")

	post := func(t *testing.T, production bool, addrs ...netip.Addr) error {
		t.Helper()
		r := &fakeResolver{addrs: addrs}
		d, err := NewDispatcher(nil, Options{Production: production, Resolver: r, GlobalID: func(_, id string) string { return id }})
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, "http://hooks.partner.example:"+port+"/x", nil)
		require.NoError(t, err)
		resp, err := d.client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		assert.Equal(t, int32(1), r.lookups.Load(), "the name is resolved by the guarded dialer")
		return err
	}

	for _, addrs := range [][]netip.Addr{
		{local},
		{netip.MustParseAddr("::ffff:127.0.0.1")},
		{netip.MustParseAddr("100.100.100.200")},
		{netip.MustParseAddr("169.254.169.254")},
		{netip.MustParseAddr("64:ff9b::a9fe:a9fe")},
		{netip.MustParseAddr("::7f00:1")},
		{netip.MustParseAddr("fd00::1")},
		{netip.MustParseAddr("198.18.0.1")},
		// One bad address among good ones is enough to refuse the name.
		{netip.MustParseAddr("8.8.8.8"), local},
	} {
		t.Run("production refuses "+addrs[len(addrs)-1].String(), func(t *testing.T) {
			err := post(t, true, addrs...)
			require.Error(t, err)
			assert.ErrorIs(t, err, errPrivateAddr)
			assert.Equal(t, errPrivateAddr, describe(err, 0), "the subscriber is told why")
		})
	}
	assert.Zero(t, hits.Load(), "no connection reached the local endpoint")

	t.Run("development reaches a local receiver through the same dialer", func(t *testing.T) {
		require.NoError(t, post(t, false, local))
		assert.Equal(t, int32(1), hits.Load())
		err := post(t, false, netip.MustParseAddr("10.0.0.1"))
		assert.ErrorIs(t, err, errPrivateAddr, "but nothing else special-purpose")
	})

	t.Run("the connection itself is checked as well", func(t *testing.T) {
		g := newGuardedDialer(&net.Dialer{}, &fakeResolver{}, false)
		_, err := g.dialer.DialContext(context.Background(), "tcp", srv.Listener.Addr().String())
		assert.ErrorIs(t, err, errPrivateAddr)
	})
}
