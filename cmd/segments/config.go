package main

import (
	"flag"
	"fmt"
	"io"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

// config is every setting of the command, each a flag with an environment variable
// and a default; flags win over the environment.
type config struct {
	addr        string
	dataDir     string
	databaseURL string
	// pgBinDir holds the embedded PostgreSQL's binaries; empty: pgserver picks them.
	pgBinDir string

	// appDatabaseURL is how the server's requests connect (appstore.go); ownerURL is
	// the database openStore opened, DATABASE_URL's or the embedded one's.
	appDatabaseURL, ownerURL string

	demo        bool
	logFormat   string
	batchWait   time.Duration
	keyCacheTTL time.Duration
	shutdown    time.Duration
	drainDelay  time.Duration
	// timeouts
	request         time.Duration
	statement       time.Duration
	idleTransaction time.Duration
	// oldTransaction is the age from which a transaction holding the change feed
	// back is logged (serve) or warned of (check).
	oldTransaction time.Duration
	// dashboard sessions (JWT)
	jwtIssuer, jwtAudience, jwtJWKSURL, jwtSecret, jwtAlgorithms, jwtWorkspaceClaim string
	jwtJWKSMinRefresh                                                               time.Duration
	// jwtMaxLifetime bounds how long a session token may be valid; 0: no bound.
	jwtMaxLifetime time.Duration
	// corsOrigins are the origins whose pages may call /graphql from a browser:
	// server.AnyOrigin alone for any, none for no CORS.
	corsOrigins []string
	// request limits and what the API shows of itself (limits.go)
	limits limits.Limits
	// admission (limits.go): requests running at once, and waiting for them; the
	// same for each caller, and for each workspace
	maxRunning, maxWaiting                         int
	maxRunningPerCaller, maxWaitingPerCaller       int
	maxRunningPerWorkspace, maxWaitingPerWorkspace int
	// reservedForUsersPerWorkspace: of the workspace's places, those its API keys
	// cannot take
	reservedForUsersPerWorkspace int
	// maxConnections caps the client connections open at once (connlimit): 0 for
	// connlimit.DefaultMax of the process's descriptors, -1 for no cap
	maxConnections int
	// environment is development or production: it picks the defaults of
	// introspection and playground (applyEnvironment).
	environment               string
	introspection, playground string
	// cost-based rate limiting (limits.go): bucket capacity (0: off) and refill
	rateCapacity int
	rateRestore  float64
	// idempotencyBudget bounds the bytes of the answers each workspace's
	// Idempotency-Keys keep (server.Config.IdempotencyBudget)
	idempotencyBudget int64
	// membershipChangesBudget bounds the bytes of the feed of memberships each
	// workspace keeps (store.SetMembershipChangesBudget)
	membershipChangesBudget int64
	// observability (telemetry.go): the /metrics listener, the OTLP trace exporter,
	// the profiles' listener
	metricsAddr, debugAddr                         string
	otlpEndpoint, otlpTracesEndpoint, otlpProtocol string
	otlpProtocolName                               string // the variable otlpProtocol came from
	otelDisabled                                   bool
	// goGC is GOGC: when empty, serve sets server.GCPercent.
	goGC string
	// goMemLimit is GOMEMLIMIT: when empty, serve sets server.SetMemoryLimit's.
	goMemLimit string
	// envErr is the first environment variable that did not parse.
	envErr error
}

// setting documents one setting for --help.
type setting struct {
	flag, env, def, usage string
	commands              string // the commands that read it, comma-separated, or all
}

// readBy reports whether command reads the setting. The command is named in full:
// "help e" once showed serve's settings, "e" being part of "serve".
func (s setting) readBy(command string) bool {
	return s.commands == "all" || slices.Contains(strings.Split(s.commands, ","), command)
}

var settings = []setting{
	{"--addr", "SEGMENTS_ADDR", "127.0.0.1:8080", "address the server listens on", "serve"},
	{"--data-dir", "SEGMENTS_DATA_DIR", "~/.local/share/segments (root: /var/lib/segments)", "where the embedded PostgreSQL keeps its data, when DATABASE_URL is not set", "all"},
	{"", "DATABASE_URL", "(unset)", "PostgreSQL to use instead of the embedded one, e.g. postgres://user:pw@host/db", "all"},
	{"", "SEGMENTS_PG_BINDIR", "(unset: /usr/lib/postgresql/N/bin)", "directory of the PostgreSQL server binaries (initdb, postgres) the embedded PostgreSQL runs; unset, those of the major version that made the data directory's cluster (pgdata/PG_VERSION), refused when not installed, or the newest for a new cluster; else initdb's on $PATH", "all"},
	{"", "SEGMENTS_APP_DATABASE_URL", "(unset: DATABASE_URL's database as role segments_app)", "how the server's requests connect: a role that is no superuser, has no BYPASSRLS and owns no table, granted segments_app, so that row-level security holds it to each request's workspace", "serve"},
	{"--demo", "SEGMENTS_DEMO", "false", "load the demo workspace and print its API key", "serve"},
	{"--log-format", "SEGMENTS_LOG_FORMAT", "text", "format of the log on stderr, the error that ends the command included: text or json (what a command prints on stdout, a key or a report, stays as it is)", "all"},
	{"--batch-wait", "SEGMENTS_BATCH_WAIT", "1ms", "how long a batch loader waits for sibling keys", "serve"},
	{"--key-cache-ttl", "SEGMENTS_KEY_CACHE_TTL", "2s", "how long an accepted API key is remembered without asking the database: a revoked key, or a rotated one past its grace, stops working within it (0: ask on every request)", "serve"},
	{"--request-timeout", "SEGMENTS_REQUEST_TIMEOUT", "10s", "deadline of each GraphQL request; its SQL is cancelled when it passes, and its body must arrive within it (408 REQUEST_TIMEOUT): at least 1s", "serve"},
	{"--statement-timeout", "SEGMENTS_STATEMENT_TIMEOUT", "15s", "PostgreSQL statement_timeout of the roles the server connects as (the application's and the owner's, which migrates): at least 1s (0: leave as is)", "serve"},
	{"--idle-transaction-timeout", "SEGMENTS_IDLE_TRANSACTION_TIMEOUT", "15s", "PostgreSQL idle_in_transaction_session_timeout of the roles the server connects as: at least 1s (0: leave as is)", "serve"},
	{"--old-transaction-age", "SEGMENTS_OLD_TRANSACTION_AGE", "1m", "serve and check: a transaction with an ID, in any database of the PostgreSQL cluster, holds every workspace's change feed back while it runs; serve logs one running longer (once a minute), check warns of it (exit status unchanged): at least 1s (0: neither; the metric stays)", "serve,check"},
	{"--drain-delay", "SEGMENTS_DRAIN_DELAY", "0s", "after SIGTERM, how long /readyz reports 503 while requests are still accepted (set it above your load balancer's probe period)", "serve"},
	{"--shutdown-timeout", "SEGMENTS_SHUTDOWN_TIMEOUT", "10s", "after draining, how long requests in flight may run before they are cancelled", "serve"},
	{"--jwt-issuer", "SEGMENTS_JWT_ISSUER", "(unset: sessions off)", "dashboard sessions: the iss that session JWTs must carry; with a JWKS URL or an HS256 secret, /graphql accepts them besides API keys", "serve"},
	{"--jwt-audience", "SEGMENTS_JWT_AUDIENCE", "(unset)", "the accepted aud of session JWTs, comma-separated (needed with --jwt-issuer)", "serve"},
	{"--jwt-jwks-url", "SEGMENTS_JWT_JWKS_URL", "(unset)", "where the issuer publishes its RS256/ES256 public keys (https; http only on localhost; redirects are not followed)", "serve"},
	{"--jwt-hs256-secret", "SEGMENTS_JWT_HS256_SECRET", "(unset)", "shared secret of HS256 session JWTs, at least 32 bytes (prefer the environment variable: flags show in ps)", "serve"},
	{"--jwt-algorithms", "SEGMENTS_JWT_ALGORITHMS", "RS256,ES256 with a JWKS URL, HS256 with a secret", "accepted alg values of session JWTs, comma-separated: RS256, ES256, HS256", "serve"},
	{"--jwt-workspace-claim", "SEGMENTS_JWT_WORKSPACE_CLAIM", "workspace", "the claim of session JWTs holding the workspace's ID as the API shows it (W_...)", "serve"},
	{"--jwt-jwks-min-refresh", "SEGMENTS_JWT_JWKS_MIN_REFRESH", "1m", "least time between two fetches of the JWKS that tokens with unknown key IDs cause, after a fetch that succeeded (after one that failed: 1 s, doubling to 10 s)", "serve"},
	{"--jwt-max-lifetime", "SEGMENTS_JWT_MAX_LIFETIME", "24h", "longest a session JWT may be valid, from its iat (without one, from now) to its exp: a longer one is refused as invalid, since sessions cannot be revoked one by one; 0: no bound", "serve"},
	{"--cors-origins", "SEGMENTS_CORS_ORIGINS", "*", "origins whose web pages may call /graphql from a browser (CORS): * for any, exact origins comma-separated (https://app.example.com,http://localhost:3000), or off; any is safe as the API authenticates by the Authorization header alone, which a page must hold and send itself, never by cookies", "serve"},
	{"--max-body-bytes", "SEGMENTS_MAX_BODY_BYTES", "262144", "largest request body (and GET query string), in bytes: 413 REQUEST_TOO_LARGE beyond", "serve"},
	{"--max-tokens", "SEGMENTS_MAX_TOKENS", "10000", "most lexical tokens of a GraphQL document (not comments or commas), counted before it is parsed", "serve"},
	{"--max-selections", "SEGMENTS_MAX_SELECTIONS", "2000", "most selections of a document, each fragment counted at every spread", "serve"},
	{"--max-depth", "SEGMENTS_MAX_DEPTH", "15", "deepest nesting of fields", "serve"},
	{"--max-aliases", "SEGMENTS_MAX_ALIASES", "50", "most aliased fields of a document", "serve"},
	{"--max-directives", "SEGMENTS_MAX_DIRECTIVES", "50", "most directives of a document", "serve"},
	{"--max-root-fields", "SEGMENTS_MAX_ROOT_FIELDS", "20", "most fields at the top of an operation", "serve"},
	{"--max-fragments", "SEGMENTS_MAX_FRAGMENTS", "100", "most named fragments of a document", "serve"},
	{"--max-repeated-fields", "SEGMENTS_MAX_REPEATED_FIELDS", "50", "most times one field (response name) may be selected at one place", "serve"},
	{"--max-list-items", "SEGMENTS_MAX_LIST_ITEMS", "10000", "longest list in a request's variables or values", "serve"},
	{"--max-cost", "SEGMENTS_MAX_COST", "1000", "highest cost of one operation (extensions.cost.requestedQueryCost): MAX_COST_EXCEEDED beyond; -1 (no limit) only with rate limiting off", "serve"},
	{"--max-running-requests", "SEGMENTS_MAX_RUNNING_REQUESTS", "40", "most GraphQL requests running at once (twice the database pool: more would only wait for a connection, holding memory)", "serve"},
	{"--max-waiting-requests", "SEGMENTS_MAX_WAITING_REQUESTS", "1000", "most requests waiting for a running one to finish, first come, first served, until their deadline: 503 SERVICE_UNAVAILABLE with Retry-After beyond", "serve"},
	{"--max-running-per-caller", "SEGMENTS_MAX_RUNNING_PER_CALLER", "4", "most GraphQL requests of one caller (an API key, a dashboard user) running at once, so that no caller's slow requests take the whole database pool", "serve"},
	{"--max-waiting-per-caller", "SEGMENTS_MAX_WAITING_PER_CALLER", "8", "most requests of one caller waiting for its running ones, until their deadline: 429 TOO_MANY_CONCURRENT_REQUESTS with Retry-After beyond", "serve"},
	{"--max-running-per-workspace", "SEGMENTS_MAX_RUNNING_PER_WORKSPACE", "8", "most GraphQL requests of one workspace (all of its API keys and users) running at once, so that no workspace takes the database pool from the others", "serve"},
	{"--max-waiting-per-workspace", "SEGMENTS_MAX_WAITING_PER_WORKSPACE", "100", "most requests of one workspace waiting for its running ones, until their deadline: 429 TOO_MANY_CONCURRENT_REQUESTS with Retry-After beyond", "serve"},
	{"--reserved-for-users-per-workspace", "SEGMENTS_RESERVED_FOR_USERS_PER_WORKSPACE", "2", "of --max-running-per-workspace, the places only the workspace's dashboard users may take (with sessions on): its API keys together run at most the rest (at least one), so that its integrations cannot take its dashboard's; -1 keeps none", "serve"},
	{"--max-connections", "SEGMENTS_MAX_CONNECTIONS", "10000 (fewer with few descriptors or little memory)", "most client connections open at once: at the cap a new one takes the place of the keep-alive one idle the longest (else of a new one silent for over 1 s), which is closed, and with none it waits in the listen backlog until one finishes its request; from 90% of the cap, connections idle over 5 s are closed; 0: the default, 10,000 or fewer: RLIMIT_NOFILE less 200, and a quarter of the memory limit at 40 KB a connection but not below --max-running-requests plus --max-waiting-requests plus 100; -1 for no cap", "serve"},
	{"--rate-limit-capacity", "SEGMENTS_RATE_LIMIT_CAPACITY", "10000", "points of each rate-limit bucket (one per API key, one per dashboard user), shared by all instances through PostgreSQL: a request costs its extensions.cost.requestedQueryCost (at least 1; a refused request 1; a replay of an Idempotency-Key what its request was charged, at least 1), THROTTLED (429) when its bucket holds less; at least --max-cost; 0 turns rate limiting off", "serve"},
	{"--rate-limit-restore-rate", "SEGMENTS_RATE_LIMIT_RESTORE_RATE", "500", "points a rate-limit bucket regains per second", "serve"},
	{"--idempotency-budget", "SEGMENTS_IDEMPOTENCY_BUDGET", "67108864", "bytes (64 MiB) each workspace's Idempotency-Keys may keep at once, their answers counted as sent (PostgreSQL compresses them) and each key's record as 240 bytes plus 3 per character of the key: a mutation's answer that would take its workspace over is kept without its body, its retries getting 410 IDEMPOTENCY_ANSWER_NOT_KEPT; at twice the budget a mutation with a new key is refused before it runs (429 IDEMPOTENCY_BUDGET_EXHAUSTED, Retry-After), until older keys expire after 24 h; -1 for no limit", "serve"},
	{"--membership-changes-budget", "SEGMENTS_MEMBERSHIP_CHANGES_BUDGET", "1073741824", "bytes (1 GiB) of the feed of memberships (membershipChanges) each workspace keeps, each entry counted as its contact IDs' stored size and 100 bytes: past it, the statements that record its changes delete its oldest entries, up to 1,000 a statement, and a cursor before them is refused with RESYNC_REQUIRED, as one past the 30 days is; set in the database for every writer as serve starts (the last to start decides); -1 for no limit (the 30 days alone)", "serve"},
	{"--env", "SEGMENTS_ENV", "development", "development or production: picks the defaults of --introspection and --playground", "serve"},
	{"--introspection", "SEGMENTS_INTROSPECTION", "on (production: sessions)", "who may introspect the schema: on, off, or sessions (dashboard sessions only, not API keys)", "serve"},
	{"--playground", "SEGMENTS_PLAYGROUND", "on (production: off)", "serve the GraphQL playground at /: on or off", "serve"},
	{"--metrics-addr", "SEGMENTS_METRICS_ADDR", "(unset: /metrics on --addr)", "address of a separate listener serving only /metrics (Prometheus), which then leaves the API's listener; off: no /metrics", "serve"},
	{"--debug-addr", "SEGMENTS_DEBUG_ADDR", "(unset: off)", "loopback address (127.0.0.1:6060, localhost:6060, [::1]:6060) of a listener serving Go's profiles at /debug/pprof/ (go tool pprof), to profile the server under real load; any other address is refused (exit status 2)", "serve"},
	{"--otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "(unset: tracing off)", "OTLP/HTTP receiver of the traces, e.g. http://collector:4318 (/v1/traces is appended); the other OTEL_* variables apply (headers, sampler, service name)", "serve"},
	{"", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "(unset)", "full URL of the OTLP/HTTP traces receiver; wins over the endpoint above, and turns tracing on too", "serve"},
	{"", "GOGC", "(unset: 400)", "Go's garbage collector target, in percent of the live heap; the server uses 400, not Go's 100: about a quarter less CPU per large page for a heap up to five times what is live, goroutine stacks counted (65 MB at full speed; 200 MB with 1,000 requests waiting for admission)", "serve"},
	{"", "GOMEMLIMIT", "(unset: 90% of the container's)", "Go's soft memory limit (e.g. 400MiB): the garbage collector runs more often as the process nears it, rather than letting GOGC's heap grow past it; unset, serve sets 90% of its cgroup's memory limit, the smallest of its own and its ancestors' (memory.max, or v1's memory.limit_in_bytes), and none without one", "serve"},
}

// flags registers the settings a command reads on fs, with defaults from the
// environment. A setting with a flag is parsed and checked by one flag.Value, for
// the flag and for its variable alike (setting).
func (c *config) flags(fs *flag.FlagSet, getenv func(string) string, serve bool) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	duration := func(p *time.Duration, name, envName string, def time.Duration) {
		*p = def
		c.setting(fs, getenv, name, envName, durationValue{p: p})
	}
	// PostgreSQL's timeouts, stored as the roles' defaults: 0 or a second at least.
	timeout := func(p *time.Duration, name, envName string, def time.Duration) {
		*p = def
		c.setting(fs, getenv, name, envName, durationValue{p: p, atLeast: time.Second})
	}
	fs.StringVar(&c.dataDir, "data-dir", env("SEGMENTS_DATA_DIR", defaultDataDir(getenv)), "")
	c.databaseURL = getenv("DATABASE_URL")
	c.pgBinDir = getenv("SEGMENTS_PG_BINDIR")
	c.checkDatabaseURL("DATABASE_URL", c.databaseURL)
	// Every command logs: migrate runs as a deploy job, whose log a pipeline reads
	// as serve's.
	c.logFormat = "text"
	c.setting(fs, getenv, "log-format", "SEGMENTS_LOG_FORMAT", choiceValue{&c.logFormat, []string{"text", "json"}})
	if !serve {
		return
	}
	c.appDatabaseURL = getenv("SEGMENTS_APP_DATABASE_URL")
	c.checkDatabaseURL("SEGMENTS_APP_DATABASE_URL", c.appDatabaseURL)
	c.goGC = getenv("GOGC")             // the runtime reads it; serve sets its own default without it
	c.goMemLimit = getenv("GOMEMLIMIT") // as GOGC
	// Only the server sets the role's timeouts: an administrative command run with
	// other values must not change them under the running servers.
	timeout(&c.statement, "statement-timeout", "SEGMENTS_STATEMENT_TIMEOUT", 15*time.Second)
	timeout(&c.idleTransaction, "idle-transaction-timeout", "SEGMENTS_IDLE_TRANSACTION_TIMEOUT", 15*time.Second)
	c.oldTransactionFlag(fs, getenv)
	c.addr = "127.0.0.1:8080"
	c.setting(fs, getenv, "addr", "SEGMENTS_ADDR", addrValue{p: &c.addr})
	c.setting(fs, getenv, "demo", "SEGMENTS_DEMO", boolValue{&c.demo})
	duration(&c.batchWait, "batch-wait", "SEGMENTS_BATCH_WAIT", time.Millisecond)
	duration(&c.keyCacheTTL, "key-cache-ttl", "SEGMENTS_KEY_CACHE_TTL", 2*time.Second)
	c.request = 10 * time.Second
	c.setting(fs, getenv, "request-timeout", "SEGMENTS_REQUEST_TIMEOUT", durationValue{p: &c.request, atLeast: time.Second, required: true})
	duration(&c.drainDelay, "drain-delay", "SEGMENTS_DRAIN_DELAY", 0)
	duration(&c.shutdown, "shutdown-timeout", "SEGMENTS_SHUTDOWN_TIMEOUT", 10*time.Second)
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", env("SEGMENTS_JWT_ISSUER", ""), "")
	fs.StringVar(&c.jwtAudience, "jwt-audience", env("SEGMENTS_JWT_AUDIENCE", ""), "")
	fs.StringVar(&c.jwtJWKSURL, "jwt-jwks-url", env("SEGMENTS_JWT_JWKS_URL", ""), "")
	fs.StringVar(&c.jwtSecret, "jwt-hs256-secret", env("SEGMENTS_JWT_HS256_SECRET", ""), "")
	fs.StringVar(&c.jwtAlgorithms, "jwt-algorithms", env("SEGMENTS_JWT_ALGORITHMS", ""), "")
	fs.StringVar(&c.jwtWorkspaceClaim, "jwt-workspace-claim", env("SEGMENTS_JWT_WORKSPACE_CLAIM", "workspace"), "")
	duration(&c.jwtJWKSMinRefresh, "jwt-jwks-min-refresh", "SEGMENTS_JWT_JWKS_MIN_REFRESH", time.Minute)
	duration(&c.jwtMaxLifetime, "jwt-max-lifetime", "SEGMENTS_JWT_MAX_LIFETIME", auth.DefaultMaxLifetime)
	// Any origin by default, as GitHub's API: the API authenticates by the
	// Authorization header alone, never by cookies or another credential a browser
	// adds by itself, and no answer allows credentials, so a foreign page can only
	// send a token it already holds, which it could as well send from a server.
	// Listing origins restricts which pages browsers let read the answers.
	c.corsOrigins = []string{server.AnyOrigin}
	c.setting(fs, getenv, "cors-origins", "SEGMENTS_CORS_ORIGINS", originsValue{&c.corsOrigins})
	c.limitFlags(fs, getenv)          // limits.go
	c.telemetryFlags(fs, getenv, env) // telemetry.go
}

// checkDatabaseURL refuses a database URL that does not parse (store.ParseURL) as
// any other setting that does not parse (envErr): before the command connects or
// starts anything. Connecting, a URL with an unescaped '@' in its password echoed
// part of it in the error.
func (c *config) checkDatabaseURL(envName, url string) {
	if url == "" || c.envErr != nil {
		return
	}
	if _, err := store.ParseURL(url); err != nil {
		c.envErr = fmt.Errorf("%s: %w", envName, err)
	}
}

// defaultDataDir follows the XDG base directories. Root gets /var/lib/segments: the
// embedded PostgreSQL then runs as the postgres OS user, which cannot enter /root.
func defaultDataDir(getenv func(string) string) string {
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		return "/var/lib/segments"
	}
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "segments")
	}
	home := getenv("HOME")
	if home == "" {
		if u, err := user.Current(); err == nil {
			home = u.HomeDir
		}
	}
	return filepath.Join(home, ".local", "share", "segments")
}

func printSettings(w io.Writer, command string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, s := range settings {
		if !s.readBy(command) {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", orDash(s.flag), s.env, s.def, s.usage)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oldTransactionFlag registers --old-transaction-age, which serve and check read.
func (c *config) oldTransactionFlag(fs *flag.FlagSet, getenv func(string) string) {
	c.oldTransaction = telemetry.DefaultOldTransactionAge
	c.setting(fs, getenv, "old-transaction-age", "SEGMENTS_OLD_TRANSACTION_AGE", durationValue{p: &c.oldTransaction, atLeast: time.Second})
}
