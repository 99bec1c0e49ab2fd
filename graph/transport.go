package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/segments/segments/graph/execution"
	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/negotiate"
	"github.com/segments/segments/internal/telemetry"
)

// The media types of GraphQL over HTTP
// (https://graphql.github.io/graphql-over-http/draft/).
const (
	// MediaTypeJSON is the legacy response type, and the only request body type.
	MediaTypeJSON = "application/json"
	// MediaTypeGraphQLResponse is the response type whose HTTP status tells a
	// request error (4xx, no data) from an executed request (200).
	MediaTypeGraphQLResponse = "application/graphql-response+json"
)

// AllowedMethods is the Allow header of the GraphQL endpoint's 405 answers.
const AllowedMethods = "GET, POST"

// Codes (extensions.code) of requests refused before any GraphQL is parsed.
const (
	// CodeBadRequest: the request is not well-formed GraphQL over HTTP (the body is not
	// a JSON object, a parameter has the wrong type, there is no query).
	CodeBadRequest = "BAD_REQUEST"
	// CodeMethodNotAllowed: a method other than GET and POST, or a mutation over GET.
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// CodeUnsupportedMediaType: a POST whose body is not application/json (UTF-8), or
	// comes in a content coding (gzip, br).
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	// CodeNotAcceptable: the Accept header allows neither response media type.
	CodeNotAcceptable = "NOT_ACCEPTABLE"
)

// Precheck refuses what the GraphQL endpoint never serves, from the request line and
// headers alone: a method other than GET and POST (405 with Allow), a POST body that
// is not application/json in UTF-8 or is content-coded (415, with Accept-Post or
// Accept-Encoding), a WebSocket handshake (400), an Accept
// header that allows neither application/graphql-response+json nor
// application/json (406). It writes the refusal and returns false, or returns the
// media type of the response. The server runs it before authentication, so that
// these refusals cost nothing; the transport runs it again, so that the handler is
// correct on its own.
func Precheck(w http.ResponseWriter, r *http.Request) (mediaType string, ok bool) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		if !jsonContentType(r.Header.Get("Content-Type")) {
			w.Header().Set("Accept-Post", MediaTypeJSON+"; charset=utf-8")
			auth.WriteError(w, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
				"send the request body as application/json (UTF-8)")
			return "", false
		}
		if !identityCoding(r.Header.Values("Content-Encoding")) {
			// RFC 9110 §15.5.16: 415, and Accept-Encoding says what would be taken. The
			// body was read as it came: a gzipped one was refused as "not a JSON
			// object", and plain JSON labelled br was run.
			w.Header().Set("Accept-Encoding", "identity")
			auth.WriteError(w, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
				"the request body's Content-Encoding is not supported: send it uncompressed, without Content-Encoding")
			return "", false
		}
	default:
		w.Header().Set("Allow", AllowedMethods)
		auth.WriteError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"the GraphQL endpoint serves GET (queries) and POST")
		return "", false
	}
	if strings.Contains(strings.ToLower(r.Header.Get("Upgrade")), "websocket") {
		// No GraphQL over WebSocket here: a handshake must not pass as a plain request.
		auth.WriteError(w, http.StatusBadRequest, CodeBadRequest,
			"this endpoint does not upgrade to WebSocket: send GraphQL over GET or POST")
		return "", false
	}
	mediaType, ok = negotiated(r)
	if !ok {
		auth.WriteError(w, http.StatusNotAcceptable, CodeNotAcceptable,
			"accept "+MediaTypeGraphQLResponse+" or "+MediaTypeJSON)
		return "", false
	}
	return mediaType, true
}

// negotiation is a request's Accept header negotiated once (WithNegotiation).
type negotiation struct {
	mediaType string
	ok        bool
}

type negotiationKey struct{}

// WithNegotiation negotiates r's response media type (ResponseMediaType) once for
// the layers that need it, the server's before GraphQL and Precheck's twice; a
// full Accept header (Apollo's, urql's) takes 0.7 µs and 4 allocations to parse.
// It returns r with the result in its context, and the result.
func WithNegotiation(r *http.Request) (*http.Request, string, bool) {
	n := negotiation{}
	n.mediaType, n.ok = ResponseMediaType(r.Header.Get("Accept"))
	return r.WithContext(context.WithValue(r.Context(), negotiationKey{}, n)), n.mediaType, n.ok
}

// negotiated is r's response media type, as WithNegotiation found it, else as
// ResponseMediaType finds it.
func negotiated(r *http.Request) (string, bool) {
	if n, found := r.Context().Value(negotiationKey{}).(negotiation); found {
		return n.mediaType, n.ok
	}
	return ResponseMediaType(r.Header.Get("Accept"))
}

// jsonContentType reports whether a request's Content-Type is application/json,
// without a charset or with UTF-8.
func jsonContentType(v string) bool {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != MediaTypeJSON {
		return false
	}
	cs, ok := params["charset"]
	return !ok || utf8Charset(cs)
}

// identityCoding reports whether the Content-Encoding header values say the body is
// not coded: no coding, or only identity.
func identityCoding(values []string) bool {
	for _, v := range values {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}

func utf8Charset(cs string) bool {
	return strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

// ResponseMediaType negotiates the response media type from an Accept header, as
// RFC 9110 says: each of the two types gets the quality of the most specific range
// that matches it; the higher quality wins; on a tie, the type the client named
// first, and application/json when only wildcards matched (so */* and a missing
// Accept get application/json, as the spec asks). A range with a charset other than
// UTF-8 matches nothing. ok is false when neither type is acceptable.
func ResponseMediaType(accept string) (mediaType string, ok bool) {
	if strings.TrimSpace(accept) == "" {
		return MediaTypeJSON, true
	}
	type match struct {
		q           float64
		specificity int // 3: the type itself, 2: application/*, 1: */*
		pos         int
	}
	var best [2]match // by ours' index
	ours := [2]string{MediaTypeGraphQLResponse, MediaTypeJSON}
	for pos, e := range negotiate.Entries(accept) {
		mt, q := e.Value, e.Q
		if cs, has := e.Params["charset"]; has && !utf8Charset(cs) {
			continue
		}
		for i, t := range ours {
			s := 0
			switch mt {
			case t:
				s = 3
			case "application/*":
				s = 2
			case "*/*":
				s = 1
			}
			if s > best[i].specificity {
				best[i] = match{q: q, specificity: s, pos: pos}
			}
		}
	}
	g, j := best[0], best[1]
	switch {
	case g.q <= 0 && j.q <= 0:
		return "", false
	case g.q != j.q:
		if g.q > j.q {
			return MediaTypeGraphQLResponse, true
		}
		return MediaTypeJSON, true
	case g.specificity == 3 && (j.specificity < 3 || g.pos < j.pos):
		return MediaTypeGraphQLResponse, true
	}
	return MediaTypeJSON, true
}

// httpTransport is GraphQL over HTTP as its spec says, in place of gqlgen's GET and
// POST transports, which answer 200 with "data": null or 422 where the spec wants
// 400 without data, and accept parameters of the wrong types:
//
//   - POST with a JSON object {query, operationName, variables, extensions}; GET with
//     the same as URL parameters (variables and extensions as JSON). Each is of its
//     type or null; anything else, or no query (unless a persisted query's hash is
//     sent), is 400 BAD_REQUEST.
//   - GET runs queries only: a mutation is 405 with "Allow: POST", before it runs.
//   - A request that fails before execution (parse, validation, variable coercion,
//     an unknown persisted query) answers without "data": 400 for
//     application/graphql-response+json, 200 for application/json. A refusal of
//     limits sets its own status (refusalStatus).
//   - An executed request is 200 with its data, whatever its errors.
type httpTransport struct{}

var _ graphql.Transport = httpTransport{}

// Supports takes every request: the transport answers the ones it does not serve.
func (httpTransport) Supports(*http.Request) bool { return true }

func (httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	mediaType, ok := Precheck(w, r)
	if !ok {
		return
	}
	start := graphql.Now()
	params, err := readParams(r)
	if err != nil {
		writeResponse(w, mediaType, http.StatusBadRequest, &graphql.Response{Errors: gqlerror.List{{
			Message: err.Error(), Extensions: map[string]any{"code": CodeBadRequest},
		}}}, false)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx := r.Context()
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		if opCtx != nil && len(errs) == 1 {
			explainVariable(apiSchema, opCtx.Operation, params.Variables, errs[0])
		}
		status := http.StatusOK
		if mediaType == MediaTypeGraphQLResponse {
			status = http.StatusBadRequest
			if code, _ := errs[0].Extensions["code"].(string); code == codeForbidden {
				status = http.StatusForbidden // authorizeWrites
			}
		}
		writeResponse(w, mediaType, status, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs), false)
		return
	}
	if r.Method == http.MethodGet && opCtx.Operation.Operation != ast.Query {
		// Before anything runs: GET must be safe (and is what caches and prefetches send).
		w.Header().Set("Allow", http.MethodPost)
		res := &graphql.Response{Errors: gqlerror.List{{
			Message:    "GET requests run queries only: send a " + string(opCtx.Operation.Operation) + " with POST",
			Extensions: map[string]any{"code": CodeMethodNotAllowed},
		}}}
		// No response interceptor sees this answer: the operation, valid, is known.
		if rec := telemetry.From(ctx); rec != nil {
			report(graphql.WithOperationContext(ctx, opCtx), rec, res)
		}
		writeResponse(w, mediaType, http.StatusMethodNotAllowed, res, false)
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(ctx)
	if resp == nil {
		// gqlgen's executor runs nothing for a request whose context ended before
		// execution (a deadline spent waiting for admission, the key lookup or the
		// throttle), and answers nil: answer as a resolver stopped by that end would
		// (TIMEOUT), not with a nil response.
		resp = exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), gqlerror.List{gqlerror.Wrap(context.Cause(ctx))})
	}
	writeResponse(w, mediaType, http.StatusOK, resp, true)
	// Written: the buffer of its data serves a later response.
	execution.ReleaseData(resp.Data)
}

// readParams reads the GraphQL request of r: the JSON body of a POST, or the URL
// parameters of a GET.
func readParams(r *http.Request) (*graphql.RawParams, error) {
	p := &graphql.RawParams{}
	if r.Method == http.MethodGet {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, errors.New("the URL parameters are malformed")
		}
		for k, vs := range q {
			if !utf8.ValidString(k) {
				return nil, errNotUTF8
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					return nil, errNotUTF8
				}
			}
		}
		for _, name := range paramNames {
			if len(q[name]) > 1 {
				return nil, repeatedParam(name)
			}
		}
		for _, name := range []string{"variables", "extensions"} {
			if loneSurrogate(q.Get(name), false) {
				return nil, errLoneSurrogate
			}
		}
		p.Query, p.OperationName = q.Get("query"), q.Get("operationName")
		for _, f := range []struct {
			name string
			dst  *map[string]any
		}{{"variables", &p.Variables}, {"extensions", &p.Extensions}} {
			if v := q.Get(f.name); v != "" {
				if err := decodeObject(json.RawMessage(v), f.dst); tooDeep(err) {
					return nil, errors.New(f.name + " nests more than 10,000 levels deep")
				} else if err != nil {
					return nil, errors.New(f.name + " must be a JSON object")
				}
			}
		}
	} else {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, errors.New("could not read the request body")
		}
		if !utf8.Valid(body) {
			return nil, errNotUTF8
		}
		// Scanned only with an escape in it: string(body) copies up to 256 KB a
		// request (80 KB of a sync of 1,000 contacts, BenchmarkSyncContacts).
		if bytes.Contains(body, []byte(`\u`)) && loneSurrogate(string(body), false) {
			return nil, errLoneSurrogate
		}
		if err := decodeBody(body, p); err != nil {
			return nil, err
		}
	}
	if loneSurrogate(p.Query, true) {
		return nil, errLoneSurrogate
	}
	// Without a query, only a persisted query's hash can say what to run.
	if _, persisted := p.Extensions["persistedQuery"]; p.Query == "" && !persisted {
		return nil, errors.New("the request has no query")
	}
	return p, nil
}

// paramNames are the parameters of a GraphQL-over-HTTP request, in the order of
// decodeBody's bits.
var paramNames = [...]string{"query", "operationName", "variables", "extensions"}

// repeatedParam is readParams' answer to a request that sends parameter name twice
// (two "query" keys in a POST's body, two query= in a GET's URL). encoding/json takes
// the last key and url.Values.Get the first parameter, as other readers (a proxy, a
// WAF) may not: one that looked at the first "query" let a mutation through.
func repeatedParam(name string) error {
	return errors.New("the request sends " + name + " more than once: send each of query, operationName, variables and extensions at most once")
}

// errBody is readParams' answer to a POST body that is not a JSON object.
var errBody = errors.New("the request body must be a JSON object with a query")

// errNotUTF8 is readParams' answer to a request that is not UTF-8, as JSON and
// GraphQL must be (RFC 8259, the GraphQL-over-HTTP spec). encoding/json replaced each
// invalid byte with U+FFFD: a partner sending Latin-1 got 200 and names such as
// "Caf\uFFFD buyers" stored for good.
var errNotUTF8 = errors.New("the request is not valid UTF-8: send JSON and GraphQL text encoded in UTF-8")

// errLoneSurrogate is readParams' answer to a request whose JSON or GraphQL strings
// escape half of a UTF-16 surrogate pair (\udce9 alone): encoding/json and the
// GraphQL parser made each a U+FFFD, stored for good, where a JavaScript client had
// cut a string inside an emoji.
var errLoneSurrogate = errors.New("the request escapes half of a UTF-16 surrogate pair (such as \\udce9 alone), which is no character: send whole characters")

// loneSurrogate reports whether s, JSON or (graphQL) a GraphQL document, has a \u
// escape of a surrogate that is not half of a pair: a high one (D800-DBFF) followed
// at once by a \u escape of a low one (DC00-DFFF) is a character, either alone is
// not. GraphQL also writes a code point in braces, \u{D800}, never a pair. An
// escaped backslash (\\) starts no escape. In JSON, backslashes are only in
// strings; in GraphQL, a comment (# to the line's end) and a block string (""",
// which escapes nothing) are skipped. One pass, whatever the text.
func loneSurrogate(s string, graphQL bool) bool {
	inString := false
	for i := 0; i < len(s); i++ {
		if graphQL && !inString {
			switch {
			case s[i] == '#':
				if end := strings.IndexByte(s[i:], '\n'); end >= 0 {
					i += end
				} else {
					return false
				}
				continue
			case strings.HasPrefix(s[i:], `"""`):
				if end := blockStringEnd(s, i+3); end >= 0 {
					i = end - 1
				} else {
					return false
				}
				continue
			case s[i] == '"':
				inString = true
			}
			continue
		}
		if graphQL && s[i] == '"' {
			inString = false
			continue
		}
		if s[i] != '\\' || i+1 >= len(s) {
			continue
		}
		if s[i+1] != 'u' {
			i++ // an escaped character, a backslash perhaps
			continue
		}
		if graphQL && i+2 < len(s) && s[i+2] == '{' {
			// At most 6 hexadecimal digits: a longer search for the brace made a
			// document of "\u{" repeated quadratic (0.5 s for 256 KB).
			end := strings.IndexByte(s[i+3:min(len(s), i+3+9)], '}')
			if end < 0 {
				continue
			}
			if r, err := strconv.ParseUint(s[i+3:i+3+end], 16, 32); err == nil && r >= 0xD800 && r <= 0xDFFF {
				return true
			}
			continue
		}
		r, ok := hex4(s, i+2)
		switch {
		case !ok || r < 0xD800 || r > 0xDFFF:
		case r >= 0xDC00: // a low half first
			return true
		default: // a high half: a low one must follow
			if low, ok := hex4(s, i+8); !ok || s[i+6] != '\\' || s[i+7] != 'u' || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// blockStringEnd is the index just past the """ that closes the GraphQL block string
// whose text starts at i (\""" is an escaped quote), or -1.
func blockStringEnd(s string, i int) int {
	for {
		j := strings.Index(s[i:], `"""`)
		if j < 0 {
			return -1
		}
		if i+j > 0 && s[i+j-1] == '\\' {
			i += j + 3
			continue
		}
		return i + j + 3
	}
}

// hex4 is the number the four hexadecimal digits of s at i write, if they do.
func hex4(s string, i int) (uint64, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	r, err := strconv.ParseUint(s[i:i+4], 16, 32)
	return r, err == nil
}

// errTooDeep is readParams' answer to a POST body of JSON nested deeper than
// encoding/json decodes: valid JSON, which errBody called no JSON object.
var errTooDeep = errors.New("the request body's JSON nests more than 10,000 levels deep")

// bodyError is decodeBody's answer to the decoder's error err.
func bodyError(err error) error {
	if tooDeep(err) {
		return errTooDeep
	}
	return errBody
}

// tooDeep reports whether err is encoding/json's refusal of JSON nested more than
// 10,000 levels deep, a syntax error told from the others only by its message
// ("invalid character '[' exceeded max depth"; TestReadParamsFromBody pins it).
func tooDeep(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) && strings.HasSuffix(se.Error(), "exceeded max depth")
}

// decodeBody decodes a POST's JSON body into p in one pass over it: a bulk
// mutation's variables are most of a request's bytes, and reading the body into raw
// fields first, then the variables from theirs, scanned them four times (1 ms of a
// request of 1,000 contacts). The body's keys match exactly, as a map's would (not
// case aside, as a struct's fields do), a parameter's key repeated is refused
// (repeatedParam; other keys are ignored, repeated or not), and a value of the wrong
// type is reported only once the whole body is known to be JSON.
func decodeBody(body []byte, p *graphql.RawParams) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errBody
	}
	var wrongType error // the first value of the wrong type
	var seen uint8      // the parameters met, a bit each in paramNames' order
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bodyError(err)
		}
		var dst any
		var want string
		var bit uint8
		switch key := t.(string); key {
		case "query":
			dst, want, bit = &p.Query, "query must be a string", 1
		case "operationName":
			dst, want, bit = &p.OperationName, "operationName must be a string", 2
		case "variables":
			dst, want, bit = &p.Variables, "variables must be a JSON object", 4
		case "extensions":
			dst, want, bit = &p.Extensions, "extensions must be a JSON object", 8
		default:
			dst = new(json.RawMessage)
		}
		if seen&bit != 0 {
			// Refused at once: the rest of the body cannot make it well-formed.
			return repeatedParam(t.(string))
		}
		seen |= bit
		var typeErr *json.UnmarshalTypeError
		switch err := dec.Decode(dst); {
		case errors.As(err, &typeErr):
			if wrongType == nil {
				wrongType = errors.New(want)
			}
		case err != nil:
			return bodyError(err)
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return errBody
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBody
	}
	return wrongType
}

// decodeObject decodes a JSON object (or null) into dst, numbers as json.Number so
// that large integers survive, as gqlgen's own transports do.
func decodeObject(v json.RawMessage, dst *map[string]any) error {
	if isNull(v) {
		return nil
	}
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' {
		return errors.New("not an object")
	}
	return decodeStrict(v, dst)
}

// decodeStrict decodes one JSON value and refuses anything after it.
func decodeStrict(b []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// marshalResponse writes resp as json.Marshal does, except for data: gqlgen wrote it
// already, as compact JSON, and json.Marshal would scan and copy it once more to
// validate and compact it (4-5% of the CPU of a page of 50 segments or contacts). One
// difference remains: <, > and & in strings of data stay as they are instead of
// becoming \u003c, \u003e and \u0026, which is the same JSON. Responses of
// incremental delivery (label, path, hasNext), which this API does not use, go
// through json.Marshal.
//
// The response is the three parts in order: what precedes data, data itself (not
// copied: a page of 50 contacts with their segments is 25 kB), and what follows it.
func marshalResponse(resp *graphql.Response) (head, data, tail []byte, err error) {
	if resp.Label != "" || resp.Path != nil || resp.HasNext != nil {
		head, err = json.Marshal(resp)
		return head, nil, nil, err
	}
	head = append(make([]byte, 0, 64), '{')
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			return nil, nil, nil, err
		}
		head = append(append(append(head, `"errors":`...), errs...), ',')
	}
	head = append(head, `"data":`...)
	data = resp.Data
	if data == nil {
		data = []byte("null")
	}
	if len(resp.Extensions) > 0 {
		ext, err := json.Marshal(resp.Extensions)
		if err != nil {
			return nil, nil, nil, err
		}
		tail = append(append(tail, `,"extensions":`...), ext...)
	}
	return head, data, append(tail, '}'), nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// writeResponse writes a GraphQL response as mediaType. Without withData the
// response has no "data" entry at all (the spec's request errors), where gqlgen's
// Response would say "data": null.
func writeResponse(w http.ResponseWriter, mediaType string, status int, resp *graphql.Response, withData bool) {
	var head, data, tail []byte
	var err error
	if withData {
		head, data, tail, err = marshalResponse(resp)
	} else {
		head, err = json.Marshal(struct {
			Errors     gqlerror.List  `json:"errors"`
			Extensions map[string]any `json:"extensions,omitempty"`
		}{resp.Errors, resp.Extensions})
	}
	if err != nil {
		// Only a resolver's value can fail to marshal; gqlgen marshalled it already.
		status, head, data, tail = http.StatusInternalServerError, []byte(`{"errors":[{"message":"internal server error","extensions":{"code":"`+codeInternal+`"}}]}`), nil, nil
	}
	h := w.Header()
	h.Set("Content-Type", mediaType+"; charset=utf-8")
	h.Add("Vary", "Accept")
	// Without it net/http sends a body of over 2 kB in chunks, its length unsaid.
	h.Set("Content-Length", strconv.Itoa(len(head)+len(data)+len(tail)))
	w.WriteHeader(status)
	for _, part := range [...][]byte{head, data, tail} {
		if len(part) > 0 {
			if _, err := w.Write(part); err != nil {
				return
			}
		}
	}
}
