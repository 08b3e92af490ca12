package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// runServe runs the whole system until SIGINT or SIGTERM (the App's
// default) or the end of ctx, after printing its URLs, one per line.
func runServe(ctx context.Context, cfg config, out io.Writer) (err error) {
	s, err := build(ctx, buildOptions{cfg: cfg})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.shutdownTelemetry(ctx)) }()
	printURLs(out, s)
	return s.app.Run(ctx)
}

// runService runs one service alone (-service), until SIGINT or SIGTERM.
func runService(ctx context.Context, cfg config, out io.Writer) (err error) {
	s, err := build(ctx, buildOptions{cfg: cfg})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.shutdownTelemetry(ctx)) }()
	if s.shop != nil {
		u := s.shop.URLs()
		for _, l := range []struct{ name, url string }{
			{"orders", u.Orders}, {"catalogue", u.Catalogue}, {"payment", u.Payment},
			{"inventory", u.Inventory}, {"shipping", u.Shipping},
		} {
			if l.name == cfg.service {
				fmt.Fprintf(out, "%s: %s\n", l.name, l.url)
			}
		}
	}
	printURLs(out, s)
	return s.app.Run(ctx)
}

// printURLs prints the gateway's and token server's URLs (when the edge
// runs here) and the admin server's.
func printURLs(out io.Writer, s *system) {
	if s.edge != nil {
		fmt.Fprintf(out, "gateway: %s\n", s.edge.GatewayURL())
		fmt.Fprintf(out, "token: %s\n", s.edge.TokenURL())
	}
	fmt.Fprintf(out, "metrics: %s/metrics\n", s.admin)
	fmt.Fprintf(out, "health: %s/health\n", s.admin)
}
