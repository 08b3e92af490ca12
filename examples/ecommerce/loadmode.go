package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/edge"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/load"
)

// runLoad starts the system (on private backends, with the production
// rate limits), drives it for cfg.load at cfg.rate requests per second,
// prints the report, and shuts the system down.
func runLoad(ctx context.Context, cfg config, out io.Writer) (err error) {
	s, err := build(ctx, buildOptions{cfg: cfg, private: true, logOutput: io.Discard})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.shutdownTelemetry(ctx)) }()
	stop, err := s.start(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ecommerce: the system started (gateway %s, metrics %s/metrics)\n", s.edge.GatewayURL(), s.admin)
	lerr := drive(ctx, cfg, out, s.edge.GatewayURL(), s.edge.TokenURL(), s.admin+"/metrics", s.edge.ClientTLS())
	return errors.Join(lerr, stop())
}

// runLoadRemote drives a system started elsewhere (-target).
func runLoadRemote(ctx context.Context, cfg config, out io.Writer) error {
	tlsc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.caCert != "" {
		pem, err := os.ReadFile(cfg.caCert)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-cacert %s: no certificate in it", cfg.caCert)
		}
		tlsc.RootCAs = pool
	} else {
		// The gateway's certificate is made at its start-up, in another
		// process: without -cacert there is nothing to check it against.
		fmt.Fprintln(out, "ecommerce: not verifying the gateway's certificate (give it with -cacert)")
		tlsc.InsecureSkipVerify = true
	}
	return drive(ctx, cfg, out, cfg.target, cfg.tokenURL, cfg.metricsURL, tlsc)
}

// drive runs the load: a mix of catalogue reads (70%), order pages from
// the web BFF (20%) and new orders (10%), from the web and mobile clients
// in turn.
func drive(ctx context.Context, cfg config, out io.Writer, gatewayURL, tokenURL, metricsURL string, tlsc *tls.Config) error {
	transport := &http.Transport{TLSClientConfig: tlsc, MaxIdleConnsPerHost: 1024, ForceAttemptHTTP2: true}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	secrets := map[string]string{}
	for _, c := range edge.DefaultClients() {
		secrets[c.ID] = c.Secret
	}
	var tokens []string
	for _, id := range []string{webClient, mobileClient} {
		tok, err := edge.FetchToken(ctx, hc, tokenURL, id, secrets[id])
		if err != nil {
			return fmt.Errorf("token for %s: %w", id, err)
		}
		tokens = append(tokens, tok)
	}

	// The products, and an order to read pages of.
	var products []product
	if err := getJSON(ctx, hc, gatewayURL+"/api/products", tokens[0], &products); err != nil {
		return err
	}
	if len(products) == 0 {
		return errors.New("the catalogue is empty")
	}
	body, _ := json.Marshal(placeOrder{CustomerID: "load-seed", Lines: []orderLine{{SKU: products[0].SKU, Qty: 1}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/api/orders", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tokens[0])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("load-seed-%d", time.Now().UnixNano()))
	var seed placedView
	if err := doJSON(hc, req, http.StatusAccepted, &seed); err != nil {
		return err
	}

	runID := time.Now().UnixNano()
	next := func(ctx context.Context, i int) (*http.Request, error) {
		tok := tokens[i%len(tokens)]
		var r *http.Request
		var err error
		switch i % 10 {
		case 0: // a new order
			b, _ := json.Marshal(placeOrder{
				CustomerID: fmt.Sprintf("load-%d", i%97),
				Lines:      []orderLine{{SKU: products[i%len(products)].SKU, Qty: 1}},
			})
			r, err = http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/api/orders", bytes.NewReader(b))
			if err == nil {
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Idempotency-Key", fmt.Sprintf("load-%d-%d", runID, i))
			}
		case 1, 2: // the web order page
			r, err = http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL+"/web/orders/"+seed.OrderID, nil)
		default: // a product
			r, err = http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL+"/api/products/"+products[i%len(products)].SKU, nil)
		}
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		return r, nil
	}

	fmt.Fprintf(out, "driving %s at %d requests/s for %v (70%% products, 20%% web order pages, 10%% new orders)\n",
		gatewayURL, cfg.rate, cfg.load)
	rep, err := load.Run(ctx, load.Config{
		Rate: cfg.rate, Duration: cfg.load, Client: hc, Next: next,
		MetricsURL: metricsURL, Progress: out,
	})
	if err != nil {
		return err
	}
	rep.Print(out)
	return nil
}

// getJSON GETs url with token and decodes the answer into v.
func getJSON(ctx context.Context, hc *http.Client, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return doJSON(hc, req, http.StatusOK, v)
}

// doJSON sends req and decodes the answer, of status want, into v.
func doJSON(hc *http.Client, req *http.Request, want int, v any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s answered %d; want %d: %s", req.Method, req.URL, resp.StatusCode, want, short(string(data), 200))
	}
	return json.Unmarshal(data, v)
}
