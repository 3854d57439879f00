# Second Opinion Gateway. Only Go is needed: the embedded store is compiled in.
GO ?= go
ADDR ?= :8080

.PHONY: run test generate check-generated lint bench build conformance fuzz

## run: build and start the gateway on the embedded store with demo data; prints dev tokens
run:
	$(GO) run . 

## build: compile the gateway binary to bin/gateway
build:
	$(GO) build -o bin/gateway .

## test: the whole suite (embedded store over the real wire protocol), plus a check that generated code is current
test: check-generated
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...
	$(MAKE) fuzz FUZZTIME=5s

FUZZTIME ?= 60s
## fuzz: the fuzz targets (the document guard, the HTTP handler), FUZZTIME each (60s; make test runs them 5s)
fuzz:
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzDocumentGuard$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzHTTPHandler$$' -fuzztime $(FUZZTIME)

## generate: regenerate gqlgen code from schema.graphqls
generate:
	$(GO) run github.com/99designs/gqlgen generate

## check-generated: fail when gqlgen output is stale
check-generated:
	@tmp=$$(mktemp -d) && cp -r graph $$tmp/graph && \
	$(GO) run github.com/99designs/gqlgen generate && \
	if ! diff -r $$tmp/graph graph >/dev/null; then \
		diff -r $$tmp/graph graph | head -40; rm -rf graph && cp -r $$tmp/graph graph; rm -rf $$tmp; \
		echo "generated code is stale: run 'make generate' and commit"; exit 1; \
	fi; rm -rf $$tmp

## lint: formatting and vet
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...

## bench: Go benchmarks (hot paths, -benchmem) and the load run (gateway vs hand-written baseline) on the embedded store
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/auth ./internal/server
	$(GO) run ./cmd/loadrun

## conformance: the graphql-http GraphQL-over-HTTP audits against the live server
conformance:
	bash conformance/run.sh
