package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/testenv"
)

// wsAnswer waits for the first "next", "error" or "complete" of operation id
// and returns its type and the codes of its errors.
func wsAnswer(t *testing.T, ws *testenv.WS, id string) (string, []string, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := ws.Next(time.Until(deadline))
		require.NoError(t, err)
		if m.ID != id {
			continue
		}
		var p struct {
			Data   map[string]any `json:"data"`
			Errors []struct {
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if m.Type == "error" {
			var errs []struct {
				Extensions map[string]any `json:"extensions"`
			}
			_ = json.Unmarshal(m.Payload, &errs)
			p.Errors = errs
		} else if len(m.Payload) > 0 {
			require.NoError(t, json.Unmarshal(m.Payload, &p))
		}
		var codes []string
		for _, e := range p.Errors {
			c, _ := e.Extensions["code"].(string)
			codes = append(codes, c)
		}
		return m.Type, codes, p.Data
	}
	t.Fatalf("no answer for %s", id)
	return "", nil, nil
}

func subscriptionsActive(t *testing.T, env *testenv.Env) string {
	rec := httptest.NewRecorder()
	env.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "gateway_subscriptions_active ") {
			return strings.TrimPrefix(l, "gateway_subscriptions_active ")
		}
	}
	return ""
}

func waitSubscriptions(t *testing.T, env *testenv.Env, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for subscriptionsActive(t, env) != want {
		if time.Now().After(deadline) {
			t.Fatalf("gateway_subscriptions_active is %s, want %s", subscriptionsActive(t, env), want)
		}
		time.Sleep(10 * time.Millisecond) // polling a gauge, with a deadline
	}
}

func TestWebsocketQueriesAreRefusedPastTheCallersRateLimit(t *testing.T) {
	env := testenv.Start(t, testenv.Options{
		RateLimits: server.RateLimits{PerAddress: 1e6, AddressBurst: 1e6, PerPrincipal: 0.01, PrincipalBurst: 3, MaxTrackedKeys: 100, IdleForgetAfter: time.Hour},
	})
	url := env.Serve(t)
	t.Run("queries over one socket are refused with RATE_LIMITED past the caller's bucket, and HTTP shares it", func(t *testing.T) {
		member := env.Token(t, testenv.Persona("member"))
		ws, err := testenv.DialWS(t, url, member)
		require.NoError(t, err)
		ack(t, ws)
		var limited int
		for i := 0; i < 10; i++ {
			id := string(rune('a' + i))
			ws.Subscribe(t, id, `{ cases(first: 100) { totalCount } }`, nil)
			typ, codes, data := wsAnswer(t, ws, id)
			if i < 3 {
				require.Equal(t, "next", typ)
				require.Empty(t, codes)
				require.NotNil(t, data["cases"])
				continue
			}
			assert.Equal(t, []string{"RATE_LIMITED"}, codes, "operation %d", i)
			assert.Nil(t, data["cases"])
			limited++
		}
		assert.Equal(t, 7, limited)
		resp := env.Do(t, member, `{ viewer { role } }`, nil)
		assert.Equal(t, []string{"RATE_LIMITED"}, resp.Codes(), "the socket spent the same bucket HTTP uses")
	})
}

func TestWebsocketSubscriptionsAreCapped(t *testing.T) {
	env := testenv.Start(t, testenv.Options{
		WSLimits: server.WSLimits{MaxSubscriptionsPerConnection: 2, MaxSubscriptionsPerPrincipal: 3, MessagesPerSecond: 1e6, MessageBurst: 1e6},
	})
	url := env.Serve(t)
	t.Run("a socket holds at most 2 subscriptions and a principal 3, the next refused with RATE_LIMITED", func(t *testing.T) {
		partner := env.Token(t, testenv.Persona("partner"))
		sub := func(ws *testenv.WS, id string) { ws.Subscribe(t, id, caseEventsDoc, nil) }
		a, err := testenv.DialWS(t, url, partner)
		require.NoError(t, err)
		ack(t, a)
		// Each subscribe runs on its own goroutine: wait for one to be live
		// before sending the next, so the refused one is known.
		sub(a, "a1")
		waitSubscriptions(t, env, "1")
		sub(a, "a2")
		waitSubscriptions(t, env, "2")
		sub(a, "a3")
		_, codes, _ := wsAnswer(t, a, "a3")
		assert.Equal(t, []string{"RATE_LIMITED"}, codes, "third on one socket")

		b, err := testenv.DialWS(t, url, partner)
		require.NoError(t, err)
		ack(t, b)
		sub(b, "b1")
		waitSubscriptions(t, env, "3")
		sub(b, "b2")
		_, codes, _ = wsAnswer(t, b, "b2")
		assert.Equal(t, []string{"RATE_LIMITED"}, codes, "fourth for the principal")

		a.Send(t, testenv.WSMessage{ID: "a1", Type: "complete"})
		waitSubscriptions(t, env, "2")
		sub(b, "b3")
		waitSubscriptions(t, env, "3")

		require.NoError(t, a.Conn.Close(websocket.StatusNormalClosure, ""))
		waitSubscriptions(t, env, "2")
		c, err := testenv.DialWS(t, url, partner)
		require.NoError(t, err)
		ack(t, c)
		sub(c, "c1")
		waitSubscriptions(t, env, "3") // the closed socket's slot is free again
	})
}

func TestWebsocketOperationsRunUnderTheRequestDeadline(t *testing.T) {
	env := testenv.Start(t, testenv.Options{RequestTimeout: time.Nanosecond})
	ws, err := testenv.DialWS(t, env.Serve(t), env.Token(t, testenv.Persona("coordinator")))
	require.NoError(t, err)
	ack(t, ws)
	ws.Subscribe(t, "1", `{ cases(first: 100) { totalCount } }`, nil)
	typ, codes, data := wsAnswer(t, ws, "1")
	assert.Nil(t, data["cases"], "answered past its deadline (%s)", typ)
	assert.Equal(t, []string{"INTERNAL"}, codes, "the client is told the operation failed, not sent a bare complete (%s)", typ)
}

func TestWebsocketFloodIsClosedWith4429(t *testing.T) {
	env := testenv.Start(t, testenv.Options{
		WSLimits: server.WSLimits{MaxSubscriptionsPerConnection: 20, MaxSubscriptionsPerPrincipal: 50, MessagesPerSecond: 1, MessageBurst: 5},
	})
	ws, err := testenv.DialWS(t, env.Serve(t), env.Token(t, testenv.Persona("member")))
	require.NoError(t, err)
	ack(t, ws)
	for i := 0; i < 50; i++ {
		if ws.Conn.Write(t.Context(), websocket.MessageText, []byte(`{"type":"ping"}`)) != nil {
			break
		}
	}
	var closeErr error
	for closeErr == nil {
		_, closeErr = ws.Next(10 * time.Second)
		require.NotErrorIs(t, closeErr, testenv.ErrTimeout)
	}
	assert.NotErrorIs(t, closeErr, io.EOF)
	assert.Equal(t, websocket.StatusCode(server.CloseRateLimited), websocket.CloseStatus(closeErr), "%v", closeErr)
}
