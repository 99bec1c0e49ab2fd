package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyBoundedWithoutDeadline: with no request deadline (RequestTimeout 0), a
// body that does not arrive is still refused with 408 REQUEST_TIMEOUT, after
// bodyTimeout. Before, 0 left the body unbounded: read before authentication, one
// sent a byte at a time held its connection for as long as its sender liked
// (serve's --request-timeout 0 was accepted, and did that).
func TestBodyBoundedWithoutDeadline(t *testing.T) {
	defer func(d time.Duration) { bodyTimeout = d }(bodyTimeout)
	bodyTimeout = 300 * time.Millisecond
	srv := httptest.NewServer(limitRequestSize(1<<20, 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("served\n"))
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const body = `{"query":"{ __typename }"}`
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body that never arrives after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", res.StatusCode)
	}
}
