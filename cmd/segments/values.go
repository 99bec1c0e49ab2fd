package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/telemetry"
)

// setting registers a flag whose environment variable sets it too, through the same
// v.Set: a value is parsed and checked the same way wherever it comes from (a flag
// once skipped the checks its variable had). The flag's default is v's value before
// the variable; a variable that does not parse is the command's usage error
// (envErr), reported after the flags.
func (c *config) setting(fs *flag.FlagSet, getenv func(string) string, flagName, envName string, v flag.Value) {
	fs.Var(v, flagName, "")
	if s := getenv(envName); s != "" {
		if err := v.Set(s); err != nil && c.envErr == nil {
			c.envErr = fmt.Errorf("%s: %w", envName, err)
		}
	}
}

// wholeNumber is an integer setting of at least min; want says what it takes.
type wholeNumber[T int | int64] struct {
	p    *T
	min  T
	want string
}

func (w wholeNumber[T]) Set(s string) error {
	var zero T
	bits := 64
	if _, ok := any(zero).(int); ok {
		bits = strconv.IntSize
	}
	v, err := strconv.ParseInt(s, 10, bits)
	if err != nil || T(v) < w.min {
		return errors.New(w.want)
	}
	*w.p = T(v)
	return nil
}

func (w wholeNumber[T]) String() string {
	if w.p == nil {
		return ""
	}
	return strconv.FormatInt(int64(*w.p), 10)
}

// limitValue is a limit: a whole number, 0 for its default, -1 for none.
func limitValue[T int | int64](p *T, def T) wholeNumber[T] {
	*p = def
	return wholeNumber[T]{p: p, min: -1, want: "want a whole number, -1 for no limit"}
}

// boolValue is a true/false setting. It takes what a Go boolean flag takes
// (strconv.ParseBool: 1, t, T, TRUE, true, True and their opposites), from a flag
// or its variable alike, and nothing else: SEGMENTS_DEMO=yes is refused, not false.
type boolValue struct{ p *bool }

func (b boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, not %q", s)
	}
	*b.p = v
	return nil
}

func (b boolValue) String() string {
	if b.p == nil {
		return ""
	}
	return strconv.FormatBool(*b.p)
}

// IsBoolFlag lets "--demo" stand for "--demo=true".
func (boolValue) IsBoolFlag() bool { return true }

// durationValue is a duration setting, in Go's syntax (90s, 1m30s), of 0 or more:
// each one's 0 says what it means (none, off), and a negative one meant the same
// without saying so (--request-timeout -1s: no deadline at all).
type durationValue struct {
	p *time.Duration
	// atLeast, when set, is the least duration but 0 (PostgreSQL's timeouts: one of
	// 30 ms, stored as its roles' defaults, stopped the seeds and checks that share
	// the roles, and 1 ms the statement that would replace it).
	atLeast time.Duration
	// required refuses 0 too: --request-timeout, whose 0 removed every deadline, the
	// request body's included, which is read before the caller is authenticated (a
	// body sent a byte at a time held its connection for as long as it liked).
	required bool
}

func (d durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("want a duration of 0 or more, not %s", s)
	}
	if d.required && v < d.atLeast {
		return fmt.Errorf("want at least %s (a request cannot go without a deadline), not %s", d.atLeast, s)
	}
	if v > 0 && v < d.atLeast {
		return fmt.Errorf("want 0 (leave as is) or at least %s, not %s", d.atLeast, s)
	}
	*d.p = v
	return nil
}

func (d durationValue) String() string {
	if d.p == nil {
		return ""
	}
	return d.p.String()
}

// floatValue is a number setting (rate-limit points per second).
type floatValue struct {
	p    *float64
	want string
}

func (f floatValue) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", f.want, err)
	}
	*f.p = v
	return nil
}

func (f floatValue) String() string {
	if f.p == nil {
		return ""
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

// choiceValue is a setting that takes one of a few words, exactly as written: like
// every such setting (--env, --introspection, --playground, --log-format), "JSON" is
// refused, not taken for json, nor for the default.
type choiceValue struct {
	p       *string
	allowed []string
}

func (c choiceValue) Set(s string) error {
	if !slices.Contains(c.allowed, s) {
		return fmt.Errorf("want %s, not %q", strings.Join(c.allowed, " or "), s)
	}
	*c.p = s
	return nil
}

func (c choiceValue) String() string {
	if c.p == nil {
		return ""
	}
	return *c.p
}

// originsValue is --cors-origins: "*", exact origins comma-separated (checked and
// written as browsers send them by server.ParseCORSOrigins), or off (none).
type originsValue struct{ p *[]string }

func (o originsValue) Set(s string) error {
	if s == "off" {
		*o.p = nil
		return nil
	}
	origins, err := server.ParseCORSOrigins(s)
	if err != nil {
		return fmt.Errorf("want *, off, or origins such as https://app.example.com, comma-separated: %w", err)
	}
	*o.p = origins
	return nil
}

func (o originsValue) String() string {
	switch {
	case o.p == nil:
		return ""
	case len(*o.p) == 0:
		return "off"
	}
	return strings.Join(*o.p, ",")
}

// addrValue is the address of a listener, host:port, checked as the flags are
// parsed: one that net.Listen refuses ("nonsense", a port beyond 65535) stopped
// serve only after the embedded PostgreSQL had started, with exit status 1.
type addrValue struct {
	p *string
	// unset lets "" through (no such listener); off, "off" (none, --metrics-addr);
	// loopback refuses any address but a loopback one (--debug-addr).
	unset, off, loopback bool
}

func (a addrValue) Set(s string) error {
	if !(s == "" && a.unset || s == "off" && a.off) {
		if err := listenAddr(s); err != nil {
			return err
		}
		if a.loopback {
			if err := telemetry.LoopbackAddr(s); err != nil {
				return err
			}
		}
	}
	*a.p = s
	return nil
}

func (a addrValue) String() string {
	if a.p == nil {
		return ""
	}
	return *a.p
}

// listenAddr checks that s is an address to listen on: host:port, the host an IP
// address, a name or empty (every interface), the port a number up to 65535 (0:
// any free one) or a service's name (http).
func listenAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port (127.0.0.1:8080, :8080): %w", err)
	}
	if port == "" {
		return fmt.Errorf("want host:port (127.0.0.1:8080, :8080), not %q: no port", s)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("want a port of 0 to 65535: %w", err)
	}
	if _, err := netip.ParseAddr(host); err != nil && !hostName(host) {
		return fmt.Errorf("want host:port, not %q: %q is neither an IP address nor a host name", s, host)
	}
	return nil
}

// hostName reports whether s is spelled as a DNS name (letters, digits, hyphens,
// underscores, dots), or is empty.
func hostName(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	})
}
