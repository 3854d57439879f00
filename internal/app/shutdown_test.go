package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/app"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/testenv"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestShutdownFinishesRequestsInFlightAndClosesSubscriptions cancels Run's
// context (what SIGTERM does through signal.NotifyContext in main) while a
// request is half sent and a subscription is live: the request completes,
// the subscription's socket closes with 1001, new connections are refused,
// and Run returns in bounded time.
func TestShutdownFinishesRequestsInFlightAndClosesSubscriptions(t *testing.T) {
	secret := "shutdown-test-secret-0123456789abcdef"
	env := map[string]string{
		"ADDR": "127.0.0.1:0", "MONGODB_URI": testenv.URI(t), "MONGODB_DATABASE": fmt.Sprintf("shutdown_%d", time.Now().UnixNano()),
		"JWT_HS256_SECRET": secret, "SEED_DEMO": "true",
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- app.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logs, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("gateway stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("gateway did not start")
	}
	base := "http://" + addr

	mint := func(persona string) string {
		p := testenv.Persona(persona)
		c := auth.Claims{Role: string(p.Role), Org: p.Org}
		c.Subject = p.Subject
		tok, err := auth.MintHS256([]byte(secret), c, time.Hour, time.Now())
		require.NoError(t, err)
		return tok
	}

	// A live subscription.
	ws, err := testenv.DialWS(t, base, mint("coordinator"))
	require.NoError(t, err)
	m, err := ws.Next(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "connection_ack", m.Type)
	ws.Subscribe(t, "1", `subscription { caseEvents { caseId } }`, nil)

	// A request in flight: headers sent, body only half.
	body := `{"query":"query Viewer { viewer { role org } }"}`
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", pr)
	require.NoError(t, err)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+mint("member"))
	respc := make(chan *http.Response, 1)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			errc <- err
			return
		}
		respc <- resp
	}()
	_, err = pw.Write([]byte(body[:10]))
	require.NoError(t, err)
	// Wait until the server holds the request (its handler reads the body).
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(scrape(t, base), "gateway_graphql_requests_in_flight 1") {
		require.True(t, time.Now().Before(deadline), "the request never reached the handler")
		time.Sleep(20 * time.Millisecond)
	}

	stopped := time.Now()
	stop() // SIGTERM

	// The socket closes with "going away".
	for {
		_, err := ws.Next(10 * time.Second)
		require.NotErrorIs(t, err, testenv.ErrTimeout, "the subscription was not closed")
		if err != nil {
			assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
			break
		}
	}

	// New connections are refused once the listener is closed.
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		require.True(t, time.Now().Before(deadline), "still accepting connections")
		time.Sleep(20 * time.Millisecond)
	}

	// The request in flight still completes.
	_, err = pw.Write([]byte(body[10:]))
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	select {
	case resp := <-respc:
		defer resp.Body.Close()
		var out struct {
			Data map[string]map[string]any `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "MEMBER", out.Data["viewer"]["role"])
	case err := <-errc:
		t.Fatalf("the request in flight failed: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight never completed")
	}

	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(app.ShutdownTimeout + 5*time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	assert.Less(t, time.Since(stopped), app.ShutdownTimeout)
	assert.Contains(t, logs.String(), "stopped")
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
