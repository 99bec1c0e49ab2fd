package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
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
			portals[portal] = stmts[cstring(body[len(portal)+1:])]
		case 'E': // Execute: portal, ...
			p.record(portals[cstring(body)])
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

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
