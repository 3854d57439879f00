# Second Opinion Gateway. Only Go is needed: the embedded store is compiled in.
GO ?= go
ADDR ?= :8080

NEW_KEY ?= data-key.new.txt
.PHONY: report-tools report-sample rotate-keys audit-verify run test generate check-generated lint bench build conformance fuzz schema-tools schema-lint schema-diff schema-snapshot fhir-tools

## run: build and start the gateway on the embedded store with demo data; prints dev tokens
run:
	$(GO) run . 

## build: compile the gateway binary to bin/gateway
build:
	$(GO) build -o bin/gateway .

## test: the whole suite (embedded store over the real wire protocol), plus a check that generated code is current; the FHIR door's output is validated against the FHIR R4 JSON schema
test: check-generated fhir-tools
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...
	$(MAKE) fuzz FUZZTIME=2000x

# make test bounds the fuzzing by a count of runs, not by time: a -fuzztime
# duration can end in a spurious "context deadline exceeded" when the
# deadline passes while a worker runs (a race in Go's fuzz coordinator,
# go.dev/issue/75804, not fixed in Go 1.26), which would fail CI having
# found nothing. 2000 runs take 3-12 s a target here.
FUZZTIME ?= 60s
## fuzz: the fuzz targets (the document guard, the HTTP handler, GraphQL variables, uploads), FUZZTIME each (60s, or a count such as 2000x; make test runs 2000 each)
fuzz:
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzDocumentGuard$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzHTTPHandler$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzVariables$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/server -run '^$$' -fuzz '^FuzzUpload$$' -fuzztime $(FUZZTIME)

## generate: regenerate gqlgen code from schema.graphqls and graph/schema/*.graphqls
generate:
	$(GO) run github.com/99designs/gqlgen generate

## check-generated: fail when gqlgen output or the genqlient example client is stale
check-generated:
	@tmp=$$(mktemp -d) && cp -r graph $$tmp/graph && \
	$(GO) run github.com/99designs/gqlgen generate && \
	if ! diff -r $$tmp/graph graph >/dev/null; then \
		diff -r $$tmp/graph graph | head -40; rm -rf graph && cp -r $$tmp/graph graph; rm -rf $$tmp; \
		echo "generated code is stale: run 'make generate' and commit"; exit 1; \
	fi; rm -rf $$tmp
	@tmp=$$(mktemp -d) && cp examples/client/generated.go $$tmp/ && \
	(cd examples/client && $(GO) run github.com/Khan/genqlient genqlient.yaml) && \
	if ! diff $$tmp/generated.go examples/client/generated.go >/dev/null; then \
		diff $$tmp/generated.go examples/client/generated.go | head -40; cp $$tmp/generated.go examples/client/; rm -rf $$tmp; \
		echo "the example client is stale: run 'go generate ./examples/...' and commit"; exit 1; \
	fi; rm -rf $$tmp

## lint: formatting, vet, the schema linted, and no breaking change against schema/snapshot.graphqls
lint: schema-lint schema-diff
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...

SCHEMA_TOOLS := tools/schema
## schema-tools: install the npm schema tooling (graphql-schema-linter, @graphql-inspector/cli) from its lock file
schema-tools: $(SCHEMA_TOOLS)/node_modules/.installed
$(SCHEMA_TOOLS)/node_modules/.installed: $(SCHEMA_TOOLS)/package.json $(SCHEMA_TOOLS)/package-lock.json
	cd $(SCHEMA_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

FHIR_TOOLS := tools/fhir
## fhir-tools: install the FHIR R4 JSON schema validator (npm, from its lock file) that internal/fhir's tests run
fhir-tools: $(FHIR_TOOLS)/node_modules/.installed
$(FHIR_TOOLS)/node_modules/.installed: $(FHIR_TOOLS)/package.json $(FHIR_TOOLS)/package-lock.json
	cd $(FHIR_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## schema-lint: descriptions everywhere, upper-case enum values, Relay connections, one input per mutation
schema-lint: schema-tools
	cd $(SCHEMA_TOOLS) && npx --no-install graphql-schema-linter

## schema-diff: fail on a breaking change against the committed snapshot (removals go through @deprecated first)
schema-diff: schema-tools
	cd $(SCHEMA_TOOLS) && npx --no-install graphql-inspector diff ../../schema/snapshot.graphqls '../../{schema.graphqls,graph/schema/*.graphqls}' --rule suppressRemovalOfDeprecatedField

## schema-snapshot: accept the current schema as the new contract baseline (on purpose: commit it with the change)
schema-snapshot:
	cat schema.graphqls graph/schema/*.graphqls > schema/snapshot.graphqls

## audit-verify: recompute the audit hash chains (ARGS: -uri/-db and -from/-to YYYY-MM-DD, or -file export.ndjson -jwks jwks.json offline)
audit-verify:
	$(GO) run ./cmd/audit-verify $(ARGS)

## bench: Go benchmarks (hot paths, -benchmem) and the load run (gateway vs hand-written baseline) on the embedded store
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/auth ./internal/server ./internal/store ./internal/workflow
	$(GO) test -run '^$$' -bench 20MiB -benchmem -benchtime 5x ./internal/documents
	$(GO) run ./cmd/loadrun

## rotate-keys: re-wrap every document's data key under the key in NEW_KEY (generated when the file does not exist); then point DATA_KEY_FILE at it
rotate-keys:
	@if [ -f "$(NEW_KEY)" ]; then $(GO) run ./cmd/rotate-keys -new "$(NEW_KEY)"; else $(GO) run ./cmd/rotate-keys -new "$(NEW_KEY)" -generate; fi

## conformance: the graphql-http GraphQL-over-HTTP audits against the live server
conformance:
	bash conformance/run.sh

## report-tools: install poppler-utils (pdftotext, pdftoppm) when missing: the report tests read the PDF's text with it
report-tools:
	@command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || (apt-get update -qq && apt-get install -y -qq poppler-utils)

## report-sample: render a made-up delivered opinion's printable report and its first page as docs/report-sample.png (regenerated, never edited)
report-sample: report-tools
	@tmp=$$(mktemp -d) && $(GO) run ./cmd/report-sample -o $$tmp/report.pdf && \
	pdftoppm -png -r 70 -f 1 -l 1 -singlefile $$tmp/report.pdf docs/report-sample && rm -rf $$tmp
