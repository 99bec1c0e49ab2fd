# The project's commands. `make test` is what CI runs (.ci/run).
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build run test test-pgbouncer generate check-generated lint bench clean

all: test build

build:
	$(GO) build -o bin/segments ./cmd/segments

# Serve on the embedded PostgreSQL with the demo workspace.
run:
	$(GO) run ./cmd/segments serve --demo

# Everything CI checks: formatting, vet, generated code up to date, and the tests
# (which start their own PostgreSQL) under the race detector.
test: lint check-generated
	$(GO) test -race -count=1 ./...
	$(MAKE) test-pgbouncer

# The integration suites again, through a PgBouncer in transaction pooling mode
# (Debian's pgbouncer package), which the tests start in front of their PostgreSQL.
test-pgbouncer:
	SEGMENTS_TEST_PGBOUNCER=1 $(GO) test -race -count=1 ./internal/server/ ./internal/store/ ./cmd/segments/

generate:
	$(GO) generate ./...

# Regenerate and fail if that changed anything: generated code is never edited by hand.
check-generated: generate
	@git diff --exit-code -- graph go.mod go.sum || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- graph)" || { git ls-files --others --exclude-standard -- graph; echo "generated files are not in git"; exit 1; }

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  test -z "$$unformatted" || { echo "gofmt needed: $$unformatted"; exit 1; }
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
