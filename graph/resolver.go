package graph

// Resolver is the root of the resolvers: it holds the use-case services.
type Resolver struct{}
