# The project's commands. `make test` is what CI runs (.ci/run).
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: playground check-playground all build run test test-pgbouncer generate check-generated lint schema-check bench bench-data bench-go pgo clean

all: test build

# The version segments version prints: the VCS stamp of go build is missing where
# GOFLAGS has -buildvcs=false, and names no tag.
build:
	$(GO) build -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null)" -o bin/segments ./cmd/segments

# Serve on the embedded PostgreSQL with the demo workspace.
run:
	$(GO) run ./cmd/segments serve --demo

# Everything CI checks: formatting, vet, generated code up to date, and the tests
# (which start their own PostgreSQL) under the race detector.
test: lint check-generated schema-check check-playground tools/graphql-http-audit/node_modules/.installed internal/server/testdata/dashboard/node_modules/.installed
	# -timeout: the store's suite took 10-12 minutes on a machine busy with other work,
	# over go test's default limit of 10 minutes.
	$(GO) test -race -count=1 -timeout 30m ./...
	# Every benchmark once, so that none rots between runs of make bench-go (each
	# checks its answers).
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...
	$(MAKE) test-pgbouncer

# The integration suites again, through a PgBouncer in transaction pooling mode
# (Debian's pgbouncer package), which the tests start in front of their PostgreSQL.
test-pgbouncer:
	SEGMENTS_TEST_PGBOUNCER=1 $(GO) test -race -count=1 -timeout 30m ./internal/server/ ./internal/store/ ./cmd/segments/

generate:
	$(GO) generate ./...

# Regenerate and fail if that changed anything: generated code is never edited by hand.
check-generated: generate
	@git diff --exit-code -- graph go.mod go.sum || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- graph)" || { git ls-files --others --exclude-standard -- graph; echo "generated files are not in git"; exit 1; }

# The schema checks (issue #6, tools/schema, docs/development.md, "Schema checks"): @graphql-eslint with
# the schema-recommended and relay rules on schema.graphqls; graphql-inspector's diff
# against the previous main, where a breaking change fails unless
# tools/schema/intentional-breaking-changes.txt lists it; relay-compiler on the dashboard's
# operations in examples/relay. About 3 s once the packages are installed.
schema-check: tools/schema/node_modules/.installed
	tools/schema/node_modules/.bin/eslint -c tools/schema/eslint.config.js --max-warnings 0 schema.graphqls
	node tools/schema/breaking-changes.mjs
	@# relay-compiler takes a schema only from a *.graphql file; its artifacts are thrown away.
	rm -rf tools/schema/.relay && mkdir -p tools/schema/.relay/__generated__
	cp schema.graphqls tools/schema/.relay/schema.graphql
	cd tools/schema && node_modules/.bin/relay-compiler relay.config.json

tools/schema/node_modules/.installed: tools/schema/package.json tools/schema/package-lock.json
	cd tools/schema && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The playground (issue #6, internal/playground): GraphiQL built by Vite from
# internal/playground/ui into internal/playground/dist, which is committed and embedded
# in the binary, so that go build and go run need no Node. Rebuild after changing ui/.
playground: internal/playground/ui/node_modules/.installed
	cd internal/playground/ui && npm run --silent build -- --logLevel warn

internal/playground/ui/node_modules/.installed: internal/playground/ui/package.json internal/playground/ui/package-lock.json
	cd internal/playground/ui && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Rebuild the playground from its lockfile and fail if the committed build differs: the
# build is reproducible, so dist/ is exactly what ui/ makes.
check-playground: playground
	@git diff --exit-code --stat -- internal/playground/dist || { echo "internal/playground/dist is stale: run 'make playground' and commit"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- internal/playground/dist)" || { git ls-files --others --exclude-standard -- internal/playground/dist; echo "playground build files are not in git"; exit 1; }

# The GraphQL over HTTP audit (issue #6): graphql-http's serverAudits, pinned by
# tools/graphql-http-audit/package-lock.json, which internal/server's
# TestGraphQLHTTPAudit runs against the real server (docs/api.md, "GraphQL over HTTP").
tools/graphql-http-audit/node_modules/.installed: tools/graphql-http-audit/package.json tools/graphql-http-audit/package-lock.json
	cd tools/graphql-http-audit && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Apollo Client and urql, pinned by its package-lock.json, with which internal/server's
# TestReadmeDashboardCaches runs docs/dashboard.md's snippets against the real server.
internal/server/testdata/dashboard/node_modules/.installed: internal/server/testdata/dashboard/package.json internal/server/testdata/dashboard/package-lock.json
	cd internal/server/testdata/dashboard && npm ci --no-audit --no-fund --loglevel=error
	touch $@

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

# The Go benchmarks (the handler on W1, W3, W4, W6 and a contact sync,
# internal/server/bench_test.go; the phones' check, internal/crm).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# A profile for trying profile-guided optimization (https://go.dev/doc/pgo;
# docs/development.md, "Profile-guided optimization"), bin/pgo/default.pgo: the CPU
# profile of the handler's benchmarks (internal/server/bench_test.go) in the API's
# mix, W1, W3, W4 and the dashboard's roots 2 s each, 300 W6 assignments, 50 syncs,
# without the benchmarks' client and setup (pprof -ignore of the benchmark's goroutine
# and net/http's client connections). Not used by any build unless passed with -pgo=.
PGO_IGNORE = testing\.\(\*B\)|net/http\.\(\*persistConn\)
pgo:
	mkdir -p bin/pgo
	$(GO) test -c -pgo=off -o bin/pgo/server.test ./internal/server/
	cd internal/server && $(CURDIR)/bin/pgo/server.test -test.run '^$$' -test.bench 'W1|W3|W4|DashboardRoots' -test.benchtime 2s -test.cpuprofile $(CURDIR)/bin/pgo/reads.pprof
	cd internal/server && $(CURDIR)/bin/pgo/server.test -test.run '^$$' -test.bench 'W6' -test.benchtime 300x -test.cpuprofile $(CURDIR)/bin/pgo/w6.pprof
	cd internal/server && $(CURDIR)/bin/pgo/server.test -test.run '^$$' -test.bench 'SyncContacts' -test.benchtime 50x -test.cpuprofile $(CURDIR)/bin/pgo/sync.pprof
	$(GO) tool pprof -proto -ignore='$(PGO_IGNORE)' bin/pgo/reads.pprof bin/pgo/w6.pprof bin/pgo/sync.pprof > bin/pgo/default.pgo.tmp
	mv bin/pgo/default.pgo.tmp bin/pgo/default.pgo

clean:
	rm -rf bin
