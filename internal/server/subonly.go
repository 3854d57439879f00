package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/secondopinion/gateway/internal/domain"
)

type plainHTTPKey struct{}

// markPlainHTTP notes that a request came as plain POST or GET, not as a
// websocket.
func markPlainHTTP(ctx context.Context) context.Context {
	return context.WithValue(ctx, plainHTTPKey{}, true)
}

// subscriptionsOverWebsocket refuses a subscription sent as a plain HTTP
// request: it would hold the request open until its deadline.
type subscriptionsOverWebsocket struct{}

var (
	_ graphql.HandlerExtension        = subscriptionsOverWebsocket{}
	_ graphql.OperationContextMutator = subscriptionsOverWebsocket{}
)

// ExtensionName implements graphql.HandlerExtension.
func (subscriptionsOverWebsocket) ExtensionName() string { return "SubscriptionsOverWebsocket" }

// Validate implements graphql.HandlerExtension.
func (subscriptionsOverWebsocket) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (subscriptionsOverWebsocket) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation != nil && oc.Operation.Operation == ast.Subscription && ctx.Value(plainHTTPKey{}) != nil {
		e := gqlerror.Errorf("subscriptions are served over graphql-transport-ws on /graphql, not plain HTTP")
		errcode.Set(e, string(domain.CodeBadUserInput))
		return e
	}
	return nil
}
