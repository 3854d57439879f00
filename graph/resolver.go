// Package graph is the GraphQL layer: gqlgen's generated executor, thin
// resolvers (convert → call → return), the field guard and the error
// presenter.
package graph

//go:generate go run github.com/99designs/gqlgen generate

import (
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/events"
	"github.com/secondopinion/gateway/internal/webhooks"
	"github.com/secondopinion/gateway/internal/workflow"
)

// Resolver is the root of the resolvers: it holds the use-case services.
type Resolver struct {
	Workflow *workflow.Service
	Events   *events.Hub
	// Webhooks registers partners' endpoints; nil disables the webhook API.
	Webhooks *webhooks.Service
	// Documents stores and serves records' files; nil disables uploads.
	Documents *documents.Service
}
