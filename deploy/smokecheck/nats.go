package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runNATSCleanup deletes the JetStream streams whose names start with the
// prefix that deploy/smoke gave the program (ECOMMERCE_STREAM_PREFIX): a
// -serve run keeps its streams, as a deployment would.
func runNATSCleanup(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("nats-cleanup", flag.ExitOnError)
	u := fs.String("url", "", "the NATS server's URL")
	prefix := fs.String("prefix", "", "delete the streams whose names start with this (at least 4 characters, so as not to delete others' streams)")
	_ = fs.Parse(args)
	if *u == "" || len(*prefix) < 4 {
		return errors.New("-url and a -prefix of at least 4 characters are required")
	}
	nc, err := nats.Connect(*u, nats.Timeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var victims []string
	for n := range names.Name() {
		if strings.HasPrefix(n, *prefix) {
			victims = append(victims, n)
		}
	}
	if err := names.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return err
	}
	for _, n := range victims {
		if err := js.DeleteStream(ctx, n); err != nil {
			return fmt.Errorf("stream %s: %w", n, err)
		}
	}
	fmt.Fprintf(w, "nats: deleted %d stream(s) %s*\n", len(victims), *prefix)
	return nil
}
