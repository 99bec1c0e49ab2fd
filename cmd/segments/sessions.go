package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"strings"

	"github.com/segments/segments/internal/auth"
)

// jwtVerifier builds the verifier of dashboard sessions from the --jwt-* settings:
// nil when none of issuer, JWKS URL and secret is set. A setting that makes no sense
// is a usage error, found before the server starts.
func (c *config) jwtVerifier(log *slog.Logger) (*auth.JWTVerifier, error) {
	v, err := auth.NewJWTVerifier(auth.JWTConfig{
		Issuer:         c.jwtIssuer,
		Audience:       commaList(c.jwtAudience),
		JWKSURL:        c.jwtJWKSURL,
		HS256Secret:    []byte(c.jwtSecret),
		Algorithms:     commaList(c.jwtAlgorithms),
		WorkspaceClaim: c.jwtWorkspaceClaim,
		JWKSMinRefresh: c.jwtJWKSMinRefresh,
		MaxLifetime:    cmp.Or(c.jwtMaxLifetime, -1), // 0 is no bound here, the default there
		Log:            log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if v != nil {
		log.Info("dashboard sessions on", "issuer", c.jwtIssuer, "audience", c.jwtAudience, "jwks_url", c.jwtJWKSURL,
			"hs256", c.jwtSecret != "", "workspace_claim", c.jwtWorkspaceClaim, "max_lifetime", c.jwtMaxLifetime)
	}
	return v, nil
}

// commaList splits a comma-separated setting, dropping blanks.
func commaList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
