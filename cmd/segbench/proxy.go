package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/segments/segments/internal/store"
)

// sqlProxy sits between a server and PostgreSQL during the capture phase and records
// the statements the server sends: the text of every simple-protocol Query ('Q')
// message, and every extended-protocol Execute ('E') message with the text of the
// statement its portal was bound to. It refuses SSL so that the traffic stays
// readable (clients that prefer SSL fall back to plain text). It is never in the
// path of a measured run.
type sqlProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	log   []string // statements in arrival order
	count int
}

func startProxy(upstream string) (*sqlProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &sqlProxy{ln: ln, upstream: upstream}
	go p.serve()
	return p, nil
}

func (p *sqlProxy) addr() string { return p.ln.Addr().String() }

func (p *sqlProxy) close() { p.ln.Close() }

// take returns the statements recorded since the last take, and forgets them.
func (p *sqlProxy) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.log
	p.log = nil
	return out
}

func (p *sqlProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *sqlProxy) handle(client net.Conn) {
	defer client.Close()
	// Startup: untyped messages until the StartupMessage; SSL and GSS requests are
	// refused here.
	var startup []byte
	for {
		hdr := make([]byte, 8)
		if _, err := io.ReadFull(client, hdr); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		code := binary.BigEndian.Uint32(hdr[4:8])
		rest := make([]byte, n-8)
		if _, err := io.ReadFull(client, rest); err != nil {
			return
		}
		if code == 80877103 || code == 80877104 { // SSLRequest, GSSENCRequest
			if _, err := client.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		}
		startup = append(hdr, rest...)
		break
	}
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	if _, err := server.Write(startup); err != nil {
		return
	}
	go func() {
		io.Copy(client, server)
		client.Close()
	}()
	stmts := map[string]string{}   // prepared statement name -> text
	portals := map[string]string{} // portal name -> statement text
	// The settings a connection that prepares binds before each statement, in the
	// same pipeline (store/prepared.go), as the SET LOCALs they stand for: recorded
	// with the statement, as the simple protocol's message holds them.
	setting := map[string]string{} // portal name -> its SET LOCAL
	var settings []string          // executed since the last statement or Sync
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(client, hdr); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:5]))
		body := make([]byte, n-4)
		if _, err := io.ReadFull(client, body); err != nil {
			return
		}
		switch hdr[0] {
		case 'Q':
			p.record(cstring(body))
		case 'P': // Parse: name, query, ...
			name := cstring(body)
			stmts[name] = cstring(body[len(name)+1:])
		case 'B': // Bind: portal, statement, ...
			portal := cstring(body)
			stmt := cstring(body[len(portal)+1:])
			portals[portal] = stmts[stmt]
			delete(setting, portal)
			if stmts[stmt] == store.PreparedSettings {
				if params := bindParams(body[len(portal)+len(stmt)+2:]); len(params) == 2 {
					setting[portal] = store.SetLocal(params[0], params[1])
				}
			}
		case 'E': // Execute: portal, ...
			portal := cstring(body)
			if set, ok := setting[portal]; ok {
				settings = append(settings, set)
				break
			}
			p.record(strings.Join(append(settings, portals[portal]), "; "))
			settings = nil
		case 'S': // Sync
			settings = nil
		}
		if _, err := server.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}

func (p *sqlProxy) record(sql string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	p.log = append(p.log, strings.TrimSpace(sql))
}

// bindParams returns the parameters of a Bind message, after its portal and
// statement names, as text (the store binds text).
func bindParams(b []byte) []string {
	u16 := func() int {
		if len(b) < 2 {
			return 0
		}
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		return n
	}
	formats := u16()
	b = b[min(len(b), 2*formats):]
	n := u16()
	out := make([]string, 0, n)
	for range n {
		if len(b) < 4 {
			return nil
		}
		size := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if size < 0 || size > len(b) {
			out = append(out, "")
			continue
		}
		out = append(out, string(b[:size]))
		b = b[size:]
	}
	return out
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
