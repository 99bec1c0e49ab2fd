package graph

import (
	"container/list"
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/limits"
)

// Each cache holds at most cacheSize documents, far more than the operations of the
// dashboard and of a partner integration together; the limits' cache of checked
// documents and the persisted queries at most cacheBytes of their text (bounded by
// count alone, 1,000 documents of 250 kB, free to send, kept 260 MB alive for good),
// the parsed-query cache at most parsedBytes as parsedCharge estimates its documents.
const (
	cacheSize  = 1000
	cacheBytes = 8 << 20
)

// The parsed-query cache holds at most parsedBytes of parsed documents, as
// parsedCharge estimates them. Bounded by their text alone (cacheBytes), it kept 8 MB
// of 9,000-item lists (63 kB of text, 2 MB parsed each): 270 MB, sent by any client.
// The dashboard's largest document (ContactsTable, 84 tokens, 379 bytes) is charged
// 27 kB (8 kB measured), its others less: cacheSize of them fit in parsedBytes, so
// cacheSize binds them, not the bytes. A document at the token limit (10,000) is
// charged 3.2 MB, so the cache keeps 10 of them (about 20 MB measured).
const parsedBytes = 32 << 20

// bytesPerToken is the most heap a lexical token of a document kept parsed in the
// cache was measured to hold, with a margin: 278 bytes for 1,847 tokens of fields
// (limitstest's "as many fields as allowed"), 257 for a contact's scalars at 5
// places, 225 for a list of 9,000 IDs, 155 for fragments side by side, 62 for nested
// inline fragments; the dashboard's documents 76 to 117 (TestMeasureQueryCache,
// MEASURE=1). Unused variable definitions are refused by validation and not cached.
const bytesPerToken = 320

// metaFieldBytes is what each __typename (or __type, __schema) is charged more:
// validation gives each such field a field definition and type of its own (other
// fields point into the schema), which the parsed document keeps, about 176 bytes;
// 19 places of 100 __typename each (limitstest's "__typename as often as allowed")
// kept 377 bytes a token, charged 340 by their tokens alone.
const metaFieldBytes = 200

// parsedCharge is what the parsed document of query is charged in the cache: its
// tokens at bytesPerToken, its meta-fields at metaFieldBytes more (counted in its
// text, strings included: charged more, never less), and twice its text, which it holds (the key) and may
// hold again as values (a block string's value is a copy: 378 kB of heap for 184
// kB of text). It lexes query once more, once per document parsed and validated,
// which costs less than either (its tokens were counted by the limits, but before
// the limits' own cache, and gqlgen's cache is not told).
func parsedCharge(query string, _ *ast.QueryDocument) int {
	tokens, _ := limits.CountTokens(query, -1)
	metaFields := strings.Count(query, "__type") + strings.Count(query, "__schema") // __type counts __typename
	return 2*len(query) + bytesPerToken*tokens + metaFieldBytes*metaFields
}

// useCaches turns on the parsed-query cache (a document sent again is neither parsed
// nor validated again) and automatic persisted queries (a client may send a query's
// SHA-256 instead of its text, over POST or GET, once its workspace has sent the
// text; PERSISTED_QUERY_NOT_FOUND asks it to send both). It must be installed before
// useLimits, whose checks see the query that APQ looked up.
//
// The parsed-query cache is shared by all workspaces, as it is meant to be: every
// workspace's dashboard sends the same documents, parsed once for all. What one
// workspace can learn of it is that a document, to its last character, was sent
// recently by someone (a few milliseconds of parsing saved): it must already hold the
// text to ask, the values a request carries belong in its variables, which are not
// part of the key, and a document evicted by another workspace's flood costs its
// sender a parse, not a request. A persisted query, found by its hash alone, is
// another matter: it is kept apart (workspaceCache), and one workspace evicted could
// not be served by its hash until it sent the text again.
func useCaches(srv *handler.Server) {
	srv.SetQueryCache(newBoundedCache(cacheSize, parsedBytes, parsedCharge))
	srv.Use(persistedQueries{extension.AutomaticPersistedQuery{Cache: newWorkspaceCache()}})
}

// A boundedCache is a least-recently-used cache of at most maxEntries entries and at
// most maxBytes in all, as size measures each entry. An entry larger than maxBytes
// alone is not kept.
type boundedCache[T any] struct {
	maxEntries, maxBytes int
	size                 func(key string, value T) int

	mu    sync.Mutex
	order *list.List // of *cached[T], the most recently used first
	items map[string]*list.Element
	bytes int
}

type cached[T any] struct {
	key   string
	value T
	size  int
}

func newBoundedCache[T any](maxEntries, maxBytes int, size func(string, T) int) *boundedCache[T] {
	return &boundedCache[T]{maxEntries: maxEntries, maxBytes: maxBytes, size: size, order: list.New(), items: map[string]*list.Element{}}
}

func (c *boundedCache[T]) Get(_ context.Context, key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		var zero T
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cached[T]).value, true
}

func (c *boundedCache[T]) Add(_ context.Context, key string, value T) {
	size := c.size(key, value)
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.bytes -= e.Value.(*cached[T]).size
		c.order.Remove(e)
	}
	c.items[key] = c.order.PushFront(&cached[T]{key, value, size})
	c.bytes += size
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		last := c.order.Back()
		old := last.Value.(*cached[T])
		c.order.Remove(last)
		delete(c.items, old.key)
		c.bytes -= old.size
	}
}

// persistedQueries is gqlgen's automatic persisted queries, whose refusals of a
// malformed extension (not an object, another version, a hash that is not the
// query's) carried no extensions.code: they are BAD_REQUEST (400), as any malformed
// request, and so is a hash that is no SHA-256 (missing, empty), which gqlgen looked
// up. PERSISTED_QUERY_NOT_FOUND is no refusal but the protocol's request for the
// text, and stays as it is.
type persistedQueries struct {
	extension.AutomaticPersistedQuery
}

func (p persistedQueries) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if ext, ok := params.Extensions["persistedQuery"].(map[string]any); ok {
		if hash, _ := ext["sha256Hash"].(string); !sha256Hex(hash) {
			return refuse(ctx, &limits.Error{Code: CodeBadRequest,
				Message: "extensions.persistedQuery.sha256Hash must be the SHA-256 of the query, 64 lower-case hexadecimal digits"},
				http.StatusBadRequest)
		}
	}
	err := p.AutomaticPersistedQuery.MutateOperationParameters(ctx, params)
	if err == nil || err.Extensions["code"] != nil {
		return err
	}
	return refuse(ctx, &limits.Error{Code: CodeBadRequest, Message: err.Message}, http.StatusBadRequest)
}

// sha256Hex reports whether s is a SHA-256 as APQ clients send it: 64 lower-case
// hexadecimal digits (gqlgen compares the query's hash with s as a string).
func sha256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// A persisted query is charged the length of its hash and text, and at least
// minQueryCharge, so that the bound of cacheBytes on the charges also holds the cache to
// cacheSize queries. A workspace holds at most workspaceShare (100 short queries),
// so that one workspace alone fills a tenth of the cache at most.
const (
	minQueryCharge = cacheBytes / cacheSize
	workspaceShare = cacheBytes / 10
)

// workspaceCache keeps each workspace's persisted queries apart, and their share of
// the cache too. A hash is found only by the workspace that sent its query: shared, a
// workspace could tell whether any other had sent a given document (a search term, a
// phone number written in it) by sending its hash. And a workspace's queries are
// evicted only by its own: one least recently used cache for all let a workspace
// sending 1,100 queries of nothing evict every other's, and a query unused for half a
// second was PERSISTED_QUERY_NOT_FOUND. A workspace beyond workspaceShare loses its
// own least recently used; when the cache as a whole is beyond cacheBytes (more than
// ten workspaces fill their share), the workspace charged the most loses its least
// recently used (of workspaces charged alike, the one whose least recently used query
// is the oldest). So each workspace keeps its queries up to workspaceShare, or its
// equal share of cacheBytes when more workspaces than ten want more, whatever the
// others send. A workspace without queries is forgotten.
//
// The workspace charged the most is found by a scan of them all (mostCharged), which
// is cheap enough: each holds a query, so they are at most cacheSize (+1 while a new
// one's query is added), and each query a scan evicts was added by an Add, so that an
// Add pays for one scan, amortized. At that worst case, cacheSize workspaces of one
// query each and each Add a new workspace's, an Add with its scan took 9 to 17 µs
// (BenchmarkWorkspaceCacheEviction), a tenth of the 110 µs the handler alone took to
// serve a request registering a query { __typename } (parsed, validated and run);
// ranking the workspaces by their charge, to find the most charged at once, took
// 0.5 µs for twice the code.
type workspaceCache struct {
	mu      sync.Mutex
	queries map[spaceKey]*list.Element // of *spaceQuery
	spaces  map[int64]*querySpace
	charge  int
	// clock counts the uses of queries, so that of workspaces charged alike the one
	// whose least recently used query is the oldest loses it.
	clock uint64
}

type spaceKey struct {
	workspace int64
	hash      string
}

type spaceQuery struct {
	key    spaceKey
	query  string
	charge int
	used   uint64 // the clock at its last use
}

// A querySpace is one workspace's persisted queries.
type querySpace struct {
	id     int64
	order  list.List // of *spaceQuery, the most recently used first
	charge int
}

func newWorkspaceCache() *workspaceCache {
	return &workspaceCache{queries: map[spaceKey]*list.Element{}, spaces: map[int64]*querySpace{}}
}

// workspaceKey is hash within the workspace of ctx; requests reach the cache only
// authenticated, so there is always one.
func workspaceKey(ctx context.Context, hash string) spaceKey {
	ws, _ := auth.WorkspaceFrom(ctx)
	return spaceKey{ws.ID, hash}
}

func (c *workspaceCache) Get(ctx context.Context, hash string) (string, bool) {
	k := workspaceKey(ctx, hash)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.queries[k]
	if !ok {
		return "", false
	}
	c.spaces[k.workspace].order.MoveToFront(e)
	return c.used(e).query, true
}

// Add keeps query under hash for the workspace of ctx, unless it alone is more than
// workspaceShare.
func (c *workspaceCache) Add(ctx context.Context, hash, query string) {
	q := &spaceQuery{key: workspaceKey(ctx, hash), query: query, charge: max(len(hash)+len(query), minQueryCharge)}
	if q.charge > workspaceShare {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.queries[q.key]; ok {
		c.evict(c.spaces[q.key.workspace], e)
	}
	s := c.spaces[q.key.workspace]
	if s == nil {
		s = &querySpace{id: q.key.workspace}
	}
	for s.order.Len() > 0 && s.charge+q.charge > workspaceShare {
		c.evict(s, s.order.Back())
	}
	// Set once s has made room: evict forgets a workspace it empties.
	c.spaces[s.id] = s
	c.queries[q.key] = s.order.PushFront(q)
	c.used(s.order.Front())
	s.charge += q.charge
	c.charge += q.charge
	for c.charge > cacheBytes {
		most := c.mostCharged()
		c.evict(most, most.order.Back())
	}
}

// used marks e's query used now, and returns it.
func (c *workspaceCache) used(e *list.Element) *spaceQuery {
	q := e.Value.(*spaceQuery)
	c.clock++
	q.used = c.clock
	return q
}

// mostCharged is the workspace charged the most, of those charged alike the one whose
// least recently used query is the oldest.
func (c *workspaceCache) mostCharged() *querySpace {
	var most *querySpace
	oldest := func(s *querySpace) uint64 { return s.order.Back().Value.(*spaceQuery).used }
	for _, s := range c.spaces {
		if most == nil || s.charge > most.charge || s.charge == most.charge && oldest(s) < oldest(most) {
			most = s
		}
	}
	return most
}

// evict forgets e, one of s's queries, and s if it has no other.
func (c *workspaceCache) evict(s *querySpace, e *list.Element) {
	q := s.order.Remove(e).(*spaceQuery)
	delete(c.queries, q.key)
	s.charge -= q.charge
	c.charge -= q.charge
	if s.order.Len() == 0 {
		delete(c.spaces, s.id)
	}
}
