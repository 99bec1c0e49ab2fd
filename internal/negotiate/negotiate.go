// Package negotiate reads the weighted lists of HTTP's content negotiation (Accept,
// Accept-Encoding: RFC 9110 section 12.5), which the API and the playground both
// read.
package negotiate

import (
	"iter"
	"mime"
	"strconv"
	"strings"
)

// An Entry is one element of a weighted list: its value (a media type, a coding),
// lowercased, its parameters (names lowercased) and its weight, q.
type Entry struct {
	Value  string
	Params map[string]string
	Q      float64
}

// Entries yields the entries of the list header, in order, with their position. An
// entry whose syntax or weight does not parse (q outside 0..1, q=zero) is left out,
// as if it were not there; a weight of 0 in any spelling (q=0.000, Q = 0) is 0.
func Entries(header string) iter.Seq2[int, Entry] {
	return func(yield func(int, Entry) bool) {
		for pos, part := range strings.Split(header, ",") {
			value, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, has := params["q"]; has {
				if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
					continue
				}
			}
			if !yield(pos, Entry{Value: value, Params: params, Q: q}) {
				return
			}
		}
	}
}
