package server

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/time/rate"

	"github.com/secondopinion/gateway/internal/domain"
)

// WSLimits bound what one graphql-transport-ws connection may hold or send.
// Operations over a websocket also take a token from the caller's
// per-principal bucket (RateLimits) and run under the request deadline, as
// over HTTP.
type WSLimits struct {
	// MaxSubscriptionsPerConnection is the most subscriptions one socket
	// keeps active (WS_MAX_SUBSCRIPTIONS_PER_CONNECTION).
	MaxSubscriptionsPerConnection int
	// MaxSubscriptionsPerPrincipal is the most subscriptions one principal
	// keeps active over all its sockets on this replica
	// (WS_MAX_SUBSCRIPTIONS_PER_PRINCIPAL).
	MaxSubscriptionsPerPrincipal int
	// MessagesPerSecond and MessageBurst bound the messages a client sends
	// on one socket; past them the socket is closed with CloseRateLimited.
	MessagesPerSecond rate.Limit
	MessageBurst      int
}

// DefaultWSLimits: an app screen follows a handful of cases, a coordinator
// console a few dozen; 20 per socket and 50 per principal leave room for
// both while capping what one token can pin in memory. Message rate: a
// client sends a subscribe, a complete or a ping now and then; 20 a second
// with a burst of 60 is far above any UI.
var DefaultWSLimits = WSLimits{
	MaxSubscriptionsPerConnection: 20,
	MaxSubscriptionsPerPrincipal:  50,
	MessagesPerSecond:             20,
	MessageBurst:                  60,
}

// CloseRateLimited is the websocket close code for a connection that sent
// messages faster than WSLimits allow (4429, after HTTP 429).
const CloseRateLimited = 4429

// wsGuard applies the per-principal rate limit, the request deadline and the
// subscription caps to operations arriving over a websocket.
type wsGuard struct {
	limits     WSLimits
	principals *limiterSet
	timeout    time.Duration

	mu     sync.Mutex
	active map[string]int // principal key → active subscriptions
}

func newWSGuard(l WSLimits, principals *limiterSet, timeout time.Duration) *wsGuard {
	return &wsGuard{limits: l, principals: principals, timeout: timeout, active: map[string]int{}}
}

type wsConnKey struct{}

// wsConnState is one socket's count of active subscriptions.
type wsConnState struct {
	mu     sync.Mutex
	active int
}

// withConnState gives a websocket connection its own subscription count;
// wsInit calls it once per connection.
func withConnState(ctx context.Context) context.Context {
	return context.WithValue(ctx, wsConnKey{}, &wsConnState{})
}

func principalKey(p domain.Principal) string {
	return string(p.Role) + "\x00" + p.Subject + "\x00" + p.Org
}

func rateLimited(msg string) graphql.ResponseHandler {
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
		Message:    msg,
		Extensions: map[string]any{"code": string(domain.CodeRateLimited)},
	}}})
}

// aroundOperations is the websocket half of the limits; plain HTTP requests
// have passed limitByPrincipal and withTimeout already.
func (g *wsGuard) aroundOperations(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if ctx.Value(plainHTTPKey{}) != nil {
		return next(ctx)
	}
	p, ok := domain.PrincipalFrom(ctx)
	if !ok {
		return next(ctx) // refused by the authentication check that follows
	}
	if ok, _ := g.principals.allow(principalKey(p), time.Now()); !ok {
		return rateLimited("rate limit exceeded for this caller; retry later")
	}
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		h := next(ctx)
		return func(rctx context.Context) *graphql.Response {
			rctx, cancel := context.WithTimeout(rctx, g.timeout)
			defer cancel()
			resp := h(rctx)
			if resp == nil && rctx.Err() != nil {
				// Past its deadline the executor answers nothing, which
				// the socket would send as a bare complete: say why.
				return &graphql.Response{Errors: gqlerror.List{{
					Message:    "the operation ran past its deadline",
					Extensions: map[string]any{"code": string(domain.CodeInternal)},
				}}}
			}
			return resp
		}
	}
	release, msg := g.acquire(ctx, principalKey(p))
	if release == nil {
		return rateLimited(msg)
	}
	// The operation's context ends when the subscription does (complete
	// from the client, the stream's end, or the socket closing).
	context.AfterFunc(ctx, release)
	return next(ctx)
}

// acquire takes a subscription slot on the connection and the principal, or
// says which cap was reached.
func (g *wsGuard) acquire(ctx context.Context, key string) (func(), string) {
	conn, _ := ctx.Value(wsConnKey{}).(*wsConnState)
	if conn == nil {
		conn = &wsConnState{}
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.active >= g.limits.MaxSubscriptionsPerConnection {
		return nil, "too many active subscriptions on this connection; complete one first"
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active[key] >= g.limits.MaxSubscriptionsPerPrincipal {
		return nil, "too many active subscriptions for this caller; complete one first"
	}
	conn.active++
	g.active[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			conn.mu.Lock()
			conn.active--
			conn.mu.Unlock()
			g.mu.Lock()
			if g.active[key]--; g.active[key] <= 0 {
				delete(g.active, key)
			}
			g.mu.Unlock()
		})
	}, ""
}

// messageLimiter closes a connection whose client sends messages faster
// than its bucket allows.
type messageLimiter struct {
	lim *rate.Limiter
}

func newMessageLimiter(l WSLimits) *messageLimiter {
	return &messageLimiter{lim: rate.NewLimiter(l.MessagesPerSecond, l.MessageBurst)}
}

// next is called for each message read; false means the socket must close.
func (m *messageLimiter) next() bool { return m.lim.Allow() }

// NextReader counts each client message against the connection's rate;
// past it the socket is closed with CloseRateLimited and the transport sees
// a closed connection.
func (c *trackedConn) NextReader() (int, io.Reader, error) {
	t, r, err := c.WebsocketConn.NextReader()
	if err != nil || c.messages == nil {
		return t, r, err
	}
	if !c.messages.next() {
		_ = c.WebsocketConn.WriteClose(CloseRateLimited, "message rate exceeded")
		_ = c.WebsocketConn.Close()
		return 0, nil, net.ErrClosed
	}
	return t, r, nil
}
