// Command segments serves the Contacts & Segments GraphQL API and manages its
// database. Run "segments help" for the commands and settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; a second one kills at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		exiting(os.Stderr, err)
		stop()
		os.Exit(exitCode(err))
	}
}

// inLogFormat is the error of a command whose settings were read: exiting writes it
// in the log format they chose.
type inLogFormat struct {
	error
	logFormat string
}

func (e inLogFormat) Unwrap() error { return e.error }

// exiting writes err, why the command failed, as the last line on stderr. With
// --log-format json it is one JSON record at ERROR, of the same handler as the
// command's log: printed as text, often over several lines (a database unreachable,
// pgx's error with its tab-indented causes), it was the line a log pipeline reading
// JSON dropped or mangled, and the one that says why the process died. A command
// line that did not parse is answered in text, with its usage.
func exiting(stderr io.Writer, err error) {
	var f inLogFormat
	if errors.As(err, &f) && f.logFormat == "json" {
		log := newLogger(stderr, f.logFormat)
		log.Error("exiting", "err", err, "exit_status", exitCode(err))
		return
	}
	fmt.Fprintln(stderr, "segments:", err)
}
