# The project's commands. `make test` is what CI runs (.ci/run).
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build run test test-pgbouncer generate check-generated lint bench bench-data bench-go clean

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

# The benchmark dataset (issue #5): a new workspace with 1M contacts, 1,000 segments and
# 5M memberships in the embedded PostgreSQL (or DATABASE_URL); prints its API key.
# Other sizes: make bench-data BENCH_DATA_FLAGS="--contacts 50000"
bench-data:
	$(GO) run ./cmd/segments bench-data $(BENCH_DATA_FLAGS)

# The benchmark suite (issue #5, cmd/segbench): each workload against our server,
# PostGraphile (bench/postgraphile, installed from its lockfile) and pgbench running
# our SQL, on one dataset in a PostgreSQL of its own (/var/lib/segments-bench, or
# DATABASE_URL); results in bench/results/. Takes about an hour at full size; not part
# of make test. Smaller: make bench BENCH_FLAGS="--contacts 50000 --reps 1"
bench: bench/postgraphile/node_modules/.installed
	$(GO) run ./cmd/segbench $(BENCH_FLAGS)

bench/postgraphile/node_modules/.installed: bench/postgraphile/package.json bench/postgraphile/package-lock.json
	cd bench/postgraphile && npm ci --no-audit --no-fund
	touch $@

# The Go benchmarks (the handler on W1 and W3, internal/server/bench_test.go).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
