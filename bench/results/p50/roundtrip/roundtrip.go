//go:build ignore

// Roundtrip times one statement's round trip from a Go process at a fixed rate, the
// way our server sends it (one simple-protocol message), for comparison with
// roundtrip.c, which sends the same bytes through libpq. See README.md.
//
//	go run roundtrip.go -url "$URL" -mode raw W1.sql
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	url := flag.String("url", "", "the database")
	rate := flag.Int("rate", 100, "statements a second")
	n := flag.Int("n", 1000, "statements timed, after 200 untimed")
	mode := flag.String("mode", "pgx", "pgx: through pgconn; raw: the socket taken from pgx, read through Go's netpoller; rawblocking: read in a blocking system call")
	spin := flag.Bool("spin", false, "wait for the next send spinning, not sleeping")
	flag.Parse()
	text, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		panic(err)
	}
	query := string(text)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(*url)
	if err != nil {
		panic(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		panic(err)
	}
	once := func() error {
		_, err := conn.PgConn().Exec(ctx, query).ReadAll()
		return err
	}
	if *mode != "pgx" {
		hc, err := conn.PgConn().Hijack()
		if err != nil {
			panic(err)
		}
		read, write := hc.Conn.Read, hc.Conn.Write
		if *mode == "rawblocking" {
			f, err := hc.Conn.(*net.TCPConn).File() // a blocking descriptor
			if err != nil {
				panic(err)
			}
			fd := int(f.Fd())
			read = func(b []byte) (int, error) { return syscall.Read(fd, b) }
			write = func(b []byte) (int, error) { return syscall.Write(fd, b) }
		}
		msg := append([]byte{'Q', 0, 0, 0, 0}, query...)
		msg = append(msg, 0)
		binary.BigEndian.PutUint32(msg[1:], uint32(len(msg)-1))
		buf := make([]byte, 1<<16)
		once = func() error {
			if _, err := write(msg); err != nil {
				return err
			}
			// Read until ReadyForQuery ('Z', length 5, status) ends the input.
			for have := 0; ; {
				n, err := read(buf[have:])
				if err != nil {
					return err
				}
				if have += n; have >= 6 && string(buf[have-6:have-1]) == "Z\x00\x00\x00\x05" {
					return nil
				}
			}
		}
	}
	for range 200 {
		if err := once(); err != nil {
			panic(err)
		}
	}
	lat := make([]time.Duration, 0, *n)
	next := time.Now()
	for range *n {
		next = next.Add(time.Second / time.Duration(*rate))
		if *spin {
			for time.Now().Before(next) {
			}
		} else {
			time.Sleep(time.Until(next))
		}
		start := time.Now()
		if err := once(); err != nil {
			panic(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)))]) / 1e6 }
	fmt.Printf("go %s rate %d: p50 %.3f ms p90 %.3f p99 %.3f\n", *mode, *rate, ms(0.5), ms(0.9), ms(0.99))
}
