package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// WS is a graphql-transport-ws client for tests. A reader goroutine pumps
// messages into a channel, because a read whose context expires closes a
// coder/websocket connection.
type WS struct {
	Conn *websocket.Conn
	msgs chan WSMessage
	err  error
}

// WSMessage is one protocol message.
type WSMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// DialWS opens a graphql-transport-ws connection to baseURL/graphql and
// sends connection_init with the token (none when empty).
func DialWS(t testing.TB, baseURL, token string) (*WS, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(baseURL, "http") + "/graphql"
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: http.Header{}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	w := &WS{Conn: c, msgs: make(chan WSMessage, 256)}
	go w.pump()
	payload := map[string]any{}
	if token != "" {
		payload["Authorization"] = "Bearer " + token
	}
	w.Send(t, WSMessage{Type: "connection_init", Payload: mustJSON(t, payload)})
	return w, nil
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// Send writes one message.
func (w *WS) Send(t testing.TB, m WSMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, w.Conn.Write(ctx, websocket.MessageText, b))
}

// Subscribe sends a subscribe message.
func (w *WS) Subscribe(t testing.TB, id, query string, vars map[string]any) {
	t.Helper()
	w.Send(t, WSMessage{ID: id, Type: "subscribe", Payload: mustJSON(t, map[string]any{"query": query, "variables": vars})})
}

func (w *WS) pump() {
	defer close(w.msgs)
	for {
		_, b, err := w.Conn.Read(context.Background())
		if err != nil {
			w.err = err
			return
		}
		var m WSMessage
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch m.Type {
		case "ping", "pong", "ka":
			continue
		}
		w.msgs <- m
	}
}

// ErrTimeout is returned by Next when nothing arrived in time.
var ErrTimeout = errors.New("testenv: no websocket message in time")

// Next returns the next message other than ping/pong/ka, waiting at most d;
// once the connection is closed it returns the close error.
func (w *WS) Next(d time.Duration) (WSMessage, error) {
	select {
	case m, ok := <-w.msgs:
		if !ok {
			return WSMessage{}, w.err
		}
		return m, nil
	case <-time.After(d):
		return WSMessage{}, ErrTimeout
	}
}
