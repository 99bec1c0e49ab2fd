package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/telemetry"
)

// Introspection says who may introspect the schema (__schema, __type; __typename is
// always allowed).
type Introspection string

// The introspection settings.
const (
	// IntrospectionOn lets every request introspect (the default, also for "").
	IntrospectionOn Introspection = "on"
	// IntrospectionOff refuses introspection to every request.
	IntrospectionOff Introspection = "off"
	// IntrospectionSessions lets dashboard sessions (JWT) introspect, not API keys.
	IntrospectionSessions Introspection = "sessions"
)

// The refusals of limits are protocol errors: gqlgen answers them without data and
// with a 4xx status (which refusalStatus sets precisely).
func init() {
	for _, code := range limits.Codes {
		errcode.RegisterErrorType(code, errcode.KindProtocol)
	}
}

// limitable is what useLimits configures: a *handler.Server (or, in tests, an
// executor behind an adapter).
type limitable interface {
	Use(graphql.HandlerExtension)
	SetDisableSuggestion(bool)
	SetValidationRulesFn(func() *rules.Rules)
}

// useLimits installs the limits of opts.Limits, the cost model with its throttle,
// the introspection setting, and validation rules that suggest nothing. It must be
// installed after the APQ extension, so that it sees the query APQ looked up.
func useLimits(srv limitable, log *slog.Logger, opts Options) {
	// Both: the executor swaps two of the five rules back to their suggesting
	// versions unless suggestions are disabled.
	srv.SetDisableSuggestion(true)
	srv.SetValidationRulesFn(rulesWithoutSuggestions)
	ext := &limitsExtension{
		limits:        opts.Limits.WithDefaults(),
		charger:       newCharger(log, opts),
		introspection: opts.Introspection,
		checked:       newBoundedCache(cacheSize, cacheBytes, func(sent, blanked string) int { return len(sent) + len(blanked) }),
	}
	srv.Use(ext)
}

// charger charges requests their cost, by a throttle, from the bucket of each caller.
type charger struct {
	throttle limits.Throttle
	bucket   func(context.Context) string
	log      *slog.Logger
}

// newCharger is the charger of opts: its Throttle (nil: limits.Unlimited) and its
// ThrottleBucket (nil: PrincipalBucket).
func newCharger(log *slog.Logger, opts Options) charger {
	c := charger{throttle: opts.Throttle, bucket: opts.ThrottleBucket, log: log}
	if c.throttle == nil {
		c.throttle = limits.Unlimited{Capacity: opts.Limits.WithDefaults().MaxCost}
	}
	if c.bucket == nil {
		c.bucket = PrincipalBucket
	}
	return c
}

// minCharge is what every request is charged at least, refused or costing nothing,
// as GitHub does: {__typename} cost 0 and ran 1,900 times a second on one key, also
// while it was throttled, and invalid documents, refused before the charge, were
// free however many errors they were answered. charge applies it, the one place
// every request and replay is charged.
const minCharge = 1

// A payment is what a request was charged, and how its bucket answered.
type payment struct {
	cost      int            // the points charged, or refused: at least minCharge
	status    *limits.Status // the bucket's; nil when the throttle did not answer
	throttled bool           // the bucket held fewer than cost points, and took none
}

// charge takes cost points, and at least minCharge, from the bucket of ctx's caller.
// A throttle that fails is logged, and the request served unthrottled: rate limiting
// fails open.
func (c charger) charge(ctx context.Context, cost int) payment {
	p := payment{cost: max(cost, minCharge)}
	st, err := c.throttle.Take(ctx, c.bucket(ctx), p.cost)
	switch {
	case errors.Is(err, limits.ErrThrottled):
		p.status, p.throttled = &st, true
	case err != nil && ctx.Err() != nil:
		// The client left, or the deadline passed, while the bucket was asked: the
		// request ends with its context, and the throttle did not fail.
	case err != nil:
		// The throttle is down: serve, within MaxCost, rather than fail every request.
		c.log.WarnContext(ctx, "throttle unavailable, request served unthrottled", "err", err)
	default:
		p.status = &st
	}
	return p
}

// refusal is the refusal of a throttled payment: 429 THROTTLED, and the Retry-After
// of refusalStatus.
func (p payment) refusal(ctx context.Context) *gqlerror.Error {
	if ref := refusalFrom(ctx); ref != nil {
		ref.retryAfter = retryAfter(p.cost, *p.status)
	}
	return refuse(ctx, &limits.Error{Code: limits.CodeThrottled,
		Message: fmt.Sprintf("throttled: the operation costs %d and %d points are available, restoring %g per second",
			p.cost, p.status.CurrentlyAvailable, p.status.RestoreRate)}, http.StatusTooManyRequests)
}

// ChargeReplay returns the charge of an answer replayed for an Idempotency-Key
// (idempotency.Options.Charge): cost points, and at least minCharge, taken by
// opts.Throttle from the bucket opts.ThrottleBucket names, as the handler of
// NewHandler(opts) charges a request.
// When the bucket holds fewer, it answers as that handler answers a throttled
// request (429 THROTTLED, Retry-After, extensions.cost with the bucket's status),
// and returns false: nothing is replayed. A throttle that fails lets the replay
// through, as it does a request.
func ChargeReplay(log *slog.Logger, opts Options) func(w http.ResponseWriter, r *http.Request, cost int) bool {
	c := newCharger(log, opts)
	return func(w http.ResponseWriter, r *http.Request, cost int) bool {
		p := c.charge(r.Context(), cost)
		if !p.throttled {
			return true
		}
		mediaType, ok := negotiated(r)
		if !ok {
			mediaType = MediaTypeJSON // the server's Precheck refused such a request before
		}
		if after := retryAfter(p.cost, *p.status); after != "" {
			w.Header().Set("Retry-After", after)
		}
		// The body the transport writes for the extension's refusal: its error, and
		// the cost report that InterceptResponse adds, without data.
		writeResponse(w, mediaType, http.StatusTooManyRequests, &graphql.Response{
			Errors:     gqlerror.List{p.refusal(r.Context())},
			Extensions: map[string]any{"cost": &limits.Report{RequestedQueryCost: p.cost, ThrottleStatus: p.status}},
		}, false)
		return false
	}
}

// retryAfter is the Retry-After of a request costing cost that a bucket in status s
// refused: the seconds, from 1 to 3600, until the bucket holds cost points again;
// "" when s does not tell.
func retryAfter(cost int, s limits.Status) string {
	if s.RestoreRate <= 0 && s.Wait <= 0 {
		return ""
	}
	secs := math.Ceil(s.Wait.Seconds())
	if s.Wait <= 0 {
		secs = math.Ceil(float64(cost-s.CurrentlyAvailable) / s.RestoreRate)
	}
	return strconv.Itoa(int(min(max(secs, 1), 3600)))
}

// maxValidationErrors is how many errors validation reports of one document, as
// graphql-js's validate (maxErrors: 100): a document under the caps held 3,000
// unknown arguments, and its 3,000 errors made a 464 KB answer for 23 KB sent.
const maxValidationErrors = 100

// tooManyValidationErrors is the error that replaces all of a document's
// validation errors past maxValidationErrors, in graphql-js's words.
const tooManyValidationErrors = "Too many validation errors, error limit reached. Validation aborted."

// rulesWithoutSuggestions are gqlparser's rules, with the five that answer "Did you
// mean ...?" (unknown fields, arguments, types, enum values and input fields, and
// sub-selections of scalars) replaced by their versions without suggestions: the
// suggestions would disclose the schema where introspection is off. Together they
// report at most maxValidationErrors errors, then tooManyValidationErrors
// (capValidationErrors): the executor asks for new rules for each document it
// validates, so the count is the document's.
func rulesWithoutSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for _, rule := range []struct {
		name        string
		replacement core.Rule
	}{
		{"FieldsOnCorrectType", rules.FieldsOnCorrectTypeRuleWithoutSuggestions},
		{"KnownArgumentNames", rules.KnownArgumentNamesRuleWithoutSuggestions},
		{"KnownTypeNames", rules.KnownTypeNamesRuleWithoutSuggestions},
		{"ScalarLeafs", rules.ScalarLeafsRuleWithoutSuggestions},
		{"ValuesOfCorrectType", exactLiterals}, // without suggestions too (literals.go)
	} {
		r.RemoveRule(rule.name)
		r.AddRule(rule.replacement.Name, rule.replacement.RuleFunc)
	}
	return capValidationErrors(r, maxValidationErrors)
}

// capValidationErrors is r with its rules sharing one count of the errors they
// report: past limit, one more error says validation stopped (tooManyValidationErrors)
// and the rest are dropped. gqlparser has no such option, and its walk cannot be
// stopped: it goes on, bounded by the caps limits.Check applied before, but its
// errors are neither built nor sent. The executor's own replacements of two rules
// (AddRule) keep these, which already have their names.
func capValidationErrors(r *rules.Rules, limit int) *rules.Rules {
	reported := 0
	capped := rules.NewRules()
	for name, rule := range r.GetInner() {
		capped.AddRule(name, func(observers *core.Events, addError core.AddErrFunc) {
			rule(observers, func(options ...core.ErrorOption) {
				reported++
				switch {
				case reported <= limit:
					addError(options...)
				case reported == limit+1:
					addError(core.Message(tooManyValidationErrors))
				}
			})
		})
	}
	return capped
}

// PrincipalBucket is the default throttle bucket: one per API key
// ("workspace:1/key:7") and one per dashboard user of a workspace
// ("workspace:1/user:<sub>"), so that a partner's noisy integration spends its own
// budget, not its workspace's dashboard users'. A context without a principal gets
// its workspace's bucket (WorkspaceBucket).
func PrincipalBucket(ctx context.Context) string {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return WorkspaceBucket(ctx)
	}
	ws := "workspace:" + strconv.FormatInt(p.Workspace.ID, 10)
	if p.Kind == auth.KindUser {
		// A subject is the issuer's choice and may be long: a long one is hashed, so
		// that bucket names stay short (the rate limiter's table caps them).
		if len(p.Subject) > 100 {
			sum := sha256.Sum256([]byte(p.Subject))
			return ws + "/user#" + hex.EncodeToString(sum[:16])
		}
		return ws + "/user:" + p.Subject
	}
	return ws + "/key:" + strconv.FormatInt(p.KeyID, 10)
}

// WorkspaceBucket is a throttle bucket per workspace, shared by all its keys and
// users.
func WorkspaceBucket(ctx context.Context) string {
	if ws, ok := auth.WorkspaceFrom(ctx); ok {
		return "workspace:" + strconv.FormatInt(ws.ID, 10)
	}
	return "anonymous"
}

// costKey is where the cost report of an operation waits, in its stats, for its
// response.
const costKey = "limits.cost"

// chargedKey marks, in an operation's stats, a request charged (settle), so that a
// response without a cost report (refused before it was costed) is not charged again.
const chargedKey = "limits.charged"

// limitsExtension refuses requests over the limits before anything runs:
//
//   - before parsing (MutateOperationParameters): variables' lists, then the tokens,
//     then, on its own parse of the document, the selections, depth, aliases,
//     directives, root fields, fragments and repeated fields (limits.Check). All of
//     it is linear, and it runs before gqlparser's validation, which is not;
//   - after validation (MutateOperationContext): introspection, then the cost, then
//     the throttle.
//
// Every request is charged once (settle), at least minCharge: one refused (by parsing,
// validation, the limits, or the cost) minCharge, after its refusal was decided, so
// that a throttled caller gets 429 THROTTLED instead (chargeRefusal); one refused
// before validation when its response is made (InterceptResponse). Every costed
// response reports extensions.cost (InterceptResponse).
type limitsExtension struct {
	limits limits.Limits
	charger
	introspection Introspection
	schema        *ast.Schema
	// checked holds the documents that passed limits.Check, by their text as sent,
	// each to its text with comments blanked ("" when it has none), so that a
	// document sent again is neither lexed nor parsed twice (gqlgen's own cache holds
	// the parsed document, by the blanked text). It is bounded in bytes as gqlgen's
	// is: 1,000 documents of 250 kB of comments, both texts, would be 500 MB.
	checked *boundedCache[string]
}

var (
	_ graphql.HandlerExtension          = (*limitsExtension)(nil)
	_ graphql.OperationParameterMutator = (*limitsExtension)(nil)
	_ graphql.OperationContextMutator   = (*limitsExtension)(nil)
	_ graphql.ResponseInterceptor       = (*limitsExtension)(nil)
)

func (e *limitsExtension) ExtensionName() string { return "Limits" }

func (e *limitsExtension) Validate(es graphql.ExecutableSchema) error {
	e.schema = es.Schema()
	return nil
}

func (e *limitsExtension) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if err := limits.CheckVariables(p.Variables, e.limits.MaxListItems); err != nil {
		return refuse(ctx, err, http.StatusBadRequest)
	}
	// Looked up before blanking: blanking a playground example's comments (376
	// bytes) took 7-12 µs, on every request.
	if blanked, ok := e.checked.Get(ctx, p.Query); ok {
		if blanked != "" {
			p.Query = blanked
		}
		return nil
	}
	sent := p.Query
	p.Query = limits.BlankComments(p.Query)
	if _, err := limits.CountTokens(p.Query, e.limits.MaxTokens); err != nil {
		return refuse(ctx, err, http.StatusBadRequest)
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: p.Query})
	if err != nil {
		return nil // gqlgen parses it again and reports the error as usual
	}
	if err := limits.Check(doc, e.limits); err != nil {
		return refuse(ctx, err, http.StatusBadRequest)
	}
	blanked := p.Query
	if blanked == sent {
		blanked = "" // not kept twice
	}
	e.checked.Add(ctx, sent, blanked)
	return nil
}

func (e *limitsExtension) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Operation
	opCtx.DisableIntrospection = !e.mayIntrospect(ctx)
	if opCtx.DisableIntrospection && introspects(opCtx) {
		msg := "introspection is disabled on this server"
		if e.introspection == IntrospectionSessions {
			// Saying "this server" told a partner that no one may introspect, while
			// the dashboard's sessions may.
			msg = "introspection is disabled for API keys on this server (dashboard sessions may introspect)"
		}
		return e.chargeRefusal(ctx, opCtx, nil, refuse(ctx, &limits.Error{Code: limits.CodeIntrospectionDisabled, Message: msg}, http.StatusBadRequest))
	}
	if op.Operation != ast.Query {
		if ref := refusalFrom(ctx); ref != nil && ref.method == http.MethodGet {
			return e.chargeRefusal(ctx, opCtx, nil, nil) // the transport refuses it next (405)
		}
		if p, ok := auth.PrincipalFrom(ctx); !ok || !p.CanWrite() || idempotency.Unrecorded(ctx) {
			return e.chargeRefusal(ctx, opCtx, nil, nil) // authorizeWrites refuses it
		}
		if err := checkPayloadArguments(opCtx); err != nil {
			if ref := refusalFrom(ctx); ref != nil {
				ref.status = http.StatusBadRequest
			}
			return e.chargeRefusal(ctx, opCtx, nil, err) // refused before it changed anything
		}
	}
	cost := limits.Cost(e.schema, op, opCtx.Variables, e.limits)
	report := &limits.Report{RequestedQueryCost: cost}
	opCtx.Stats.SetExtension(costKey, report)
	if cost > e.limits.MaxCost && e.limits.MaxCost >= 0 {
		return e.chargeRefusal(ctx, opCtx, report, refuse(ctx, &limits.Error{Code: limits.CodeMaxCost, Limit: e.limits.MaxCost,
			Message: fmt.Sprintf("the operation costs %d, more than the maximum of %d: ask for smaller pages (first, last) or fewer fields",
				cost, e.limits.MaxCost)}, http.StatusBadRequest))
	}
	return e.settle(ctx, opCtx, report, cost)
}

func (e *limitsExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	opCtx := graphql.GetOperationContext(ctx)
	if r, ok := opCtx.Stats.GetExtension(costKey).(*limits.Report); ok {
		graphql.RegisterExtension(ctx, "cost", r)
		return next(ctx)
	}
	if opCtx.Stats.GetExtension(chargedKey) != nil {
		return next(ctx)
	}
	// Refused before validation ended (a parse or validation error, a cap, an unknown
	// persisted query): charged the minimum now, and refused for it when throttled.
	if err := e.chargeRefusal(ctx, opCtx, nil, nil); err != nil {
		return &graphql.Response{Errors: gqlerror.List{err}, Extensions: map[string]any{"cost": opCtx.Stats.GetExtension(costKey)}}
	}
	return next(ctx)
}

// chargeRefusal charges a request that runs nothing, refused (refusal, its error) or
// refused later (nil): it costs nothing, so it is charged minCharge (settle), with
// report when it has one. Its own refusal wins while its bucket has the points;
// else chargeRefusal returns the refusal as throttled.
func (e *limitsExtension) chargeRefusal(ctx context.Context, opCtx *graphql.OperationContext, report *limits.Report, refusal *gqlerror.Error) *gqlerror.Error {
	if err := e.settle(ctx, opCtx, report, 0); err != nil {
		return err
	}
	return refusal
}

// settle charges the request of opCtx cost points (at least minCharge: charge) and
// records the charge: in report, when the request has one, and in its telemetry, kept
// with the answer of an Idempotency-Key to charge its replays. A request without a
// report (refused before it was costed) gets one only when throttled, as every
// throttled request does. settle returns the refusal of a throttled request, else nil.
func (e *limitsExtension) settle(ctx context.Context, opCtx *graphql.OperationContext, report *limits.Report, cost int) *gqlerror.Error {
	opCtx.Stats.SetExtension(chargedKey, true)
	p := e.charge(ctx, cost)
	if report == nil && p.throttled {
		report = &limits.Report{}
		opCtx.Stats.SetExtension(costKey, report)
	}
	if report != nil {
		// A request costs what it is charged ({ __typename }: minCharge), or more when
		// refused for its cost.
		report.RequestedQueryCost = max(report.RequestedQueryCost, p.cost)
		report.ThrottleStatus = p.status
	}
	if p.throttled {
		return p.refusal(ctx)
	}
	if report != nil {
		report.ActualQueryCost = p.cost
	}
	if rec := telemetry.From(ctx); rec != nil {
		rec.Charged = p.cost
	}
	return nil
}

func (e *limitsExtension) mayIntrospect(ctx context.Context) bool {
	switch e.introspection {
	case IntrospectionOff:
		return false
	case IntrospectionSessions:
		p, ok := auth.PrincipalFrom(ctx)
		return ok && p.Kind == auth.KindUser
	}
	return true
}

// introspects reports whether the operation selects __schema or __type.
func introspects(opCtx *graphql.OperationContext) bool {
	if opCtx.Operation.Operation != ast.Query {
		return false
	}
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"}) {
		if f.Name == "__schema" || f.Name == "__type" {
			return true
		}
	}
	return false
}

// refusal is how the extension sets the HTTP status of the requests it refuses:
// the transport answers requests that fail before execution with 200 or 400, by the
// Accept header (transport.go); refusals of limits are always 400, and throttled
// requests 429.
type refusal struct {
	method     string
	status     int
	retryAfter string
}

type refusalKey struct{}

func refusalFrom(ctx context.Context) *refusal {
	r, _ := ctx.Value(refusalKey{}).(*refusal)
	return r
}

// refuse returns err as the request's only error, with status as its HTTP status.
func refuse(ctx context.Context, err *limits.Error, status int) *gqlerror.Error {
	if ref := refusalFrom(ctx); ref != nil && err.Code != limits.CodeValidationFailed {
		ref.status = status
	}
	ext := map[string]any{"code": err.Code}
	if err.Limit > 0 {
		ext["limit"] = err.Limit
	}
	res := &gqlerror.Error{Message: err.Message, Extensions: ext}
	if err.At != nil {
		res.Locations = []gqlerror.Location{{Line: err.At.Line, Column: err.At.Column}}
	}
	return res
}

// refusalStatus serves next with the status its refusals set.
func refusalStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := &refusal{method: r.Method}
		next.ServeHTTP(&refusalWriter{ResponseWriter: w, ref: ref}, r.WithContext(context.WithValue(r.Context(), refusalKey{}, ref)))
	})
}

type refusalWriter struct {
	http.ResponseWriter
	ref   *refusal
	wrote bool
}

func (w *refusalWriter) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if w.ref.status != 0 {
		status = w.ref.status
		if w.ref.retryAfter != "" {
			w.Header().Set("Retry-After", w.ref.retryAfter)
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *refusalWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *refusalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
