package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// get sends GET path to the gateway and returns its answer, whatever its
// status.
func (b *bff) get(ctx context.Context, path string) (*restRun, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.front.URL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.front.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &restRun{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// restRun is what one REST request gave.
type restRun struct {
	status int
	header http.Header
	body   []byte
}

// fields returns the top-level fields of the answer's document.
func (r *restRun) fields() ([]string, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &doc); err != nil {
		return nil, fmt.Errorf("the answer is not a JSON object: %w", err)
	}
	return slices.Sorted(maps.Keys(doc)), nil
}

// field returns the document's field name as it came.
func (r *restRun) field(name string) (json.RawMessage, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &doc); err != nil {
		return nil, fmt.Errorf("the answer is not a JSON object: %w", err)
	}
	return doc[name], nil
}

// showREST plays the REST BFF's scenes.
func showREST(ctx context.Context, out io.Writer, b *bff, otelp *providers) error {
	// get sends GET path, and counts the upstream calls it made.
	get := func(path string) (*restRun, calls, error) {
		before := b.svcs.counts()
		r, err := b.get(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		return r, b.svcs.counts().since(before), nil
	}
	// want fails unless r has the status.
	want := func(r *restRun, path string, status int) error {
		if r.status != status {
			return fmt.Errorf("GET %s: %d %s; want %d", path, r.status, bytes.TrimSpace(r.body), status)
		}
		return nil
	}

	const webPath = "/web/orders/1003"
	fmt.Fprintf(out, "== REST web: GET %s, the order page aggregated from the four upstreams\n", webPath)
	web, webCalls, err := get(webPath)
	if err != nil {
		return err
	}
	if err := want(web, webPath, http.StatusOK); err != nil {
		return err
	}
	fields, err := web.fields()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  answer: %d, %d bytes, fields %s\n", web.status, len(web.body), strings.Join(fields, ", "))
	fmt.Fprintf(out, "  upstream calls: %s\n", callLine(webCalls))

	const mobilePath = "/mobile/orders/1003"
	fmt.Fprintf(out, "== REST mobile: GET %s, the same aggregation shaped for the app\n", mobilePath)
	mobile, mobileCalls, err := get(mobilePath)
	if err != nil {
		return err
	}
	if err := want(mobile, mobilePath, http.StatusOK); err != nil {
		return err
	}
	fmt.Fprintf(out, "  answer: %d, %d bytes (the web's: %d):\n    %s\n", mobile.status, len(mobile.body), len(web.body), mobile.body)
	fmt.Fprintf(out, "  upstream calls: %s; the customer and the products from the cache\n", callLine(mobileCalls))

	fmt.Fprintln(out, "== REST web again: the whole document from the cache")
	again, againCalls, err := get(webPath)
	if err != nil {
		return err
	}
	same := "the same answer"
	if !bytes.Equal(again.body, web.body) {
		same = "a DIFFERENT answer"
	}
	fmt.Fprintf(out, "  answer: %d, %d bytes, %s; upstream calls: %s\n", again.status, len(again.body), same, callLine(againCalls))

	const partialPath = "/web/orders/1004"
	fmt.Fprintf(out, "== REST with reviews down: GET %s, the reviews service answering 500\n", partialPath)
	b.svcs.reviews.failing.Store(true)
	partial, partialCalls, err := get(partialPath)
	b.svcs.reviews.failing.Store(false)
	if err != nil {
		return err
	}
	if err := want(partial, partialPath, http.StatusOK); err != nil {
		return err
	}
	if fields, err = partial.fields(); err != nil {
		return err
	}
	missing, err := partial.field(aggregate.PartialField)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  answer: %d, %d bytes, fields %s; %s: %s\n", partial.status, len(partial.body),
		strings.Join(fields, ", "), aggregate.PartialHeader, partial.header.Get(aggregate.PartialHeader))
	fmt.Fprintf(out, "  %s: %s\n", aggregate.PartialField, missing)
	fmt.Fprintf(out, "  upstream calls: %s\n", callLine(partialCalls))

	const collapsePath = "/web/orders/1006"
	const n = 8
	fmt.Fprintf(out, "== REST: %d identical concurrent requests → one call per upstream\n", n)
	runs, collapseCalls, err := concurrentGets(ctx, b, collapsePath, n)
	if err != nil {
		return err
	}
	statuses := calls{}
	bodies := map[string]bool{}
	for _, r := range runs {
		statuses[strconv.Itoa(r.status)]++
		bodies[string(r.body)] = true
	}
	fmt.Fprintf(out, "  GET %s ×%d, the orders service holding the first until all are in: answers %s, %d distinct\n",
		collapsePath, n, statuses, len(bodies))
	fmt.Fprintf(out, "  upstream calls: %s\n", callLine(collapseCalls))

	const failedPath = "/web/orders/1005"
	fmt.Fprintf(out, "== REST with customers down: GET %s, the customers service answering 500\n", failedPath)
	b.svcs.customers.failing.Store(true)
	failed, _, err := get(failedPath)
	b.svcs.customers.failing.Store(false)
	if err != nil {
		return err
	}
	if err := want(failed, failedPath, http.StatusBadGateway); err != nil {
		return err
	}
	// The calls are not shown: the products and reviews, asked for at
	// the same time as the customer, are cancelled when it fails, before
	// or after their upstream saw them (which is also why this scene
	// comes after the one that counts calls).
	fmt.Fprintf(out, "  answer: %d %s, the required customer failed:\n    %s\n", failed.status, http.StatusText(failed.status), failed.body)

	const treePath = "/web/orders/1007"
	fmt.Fprintf(out, "== the spans of one aggregation, GET %s\n", treePath)
	if err := otelp.tp.ForceFlush(ctx); err != nil {
		return err
	}
	seen := len(otelp.spans.Ended())
	tree, _, err := get(treePath)
	if err != nil {
		return err
	}
	if err := want(tree, treePath, http.StatusOK); err != nil {
		return err
	}
	spans, err := requestSpans(ctx, otelp.spans, seen)
	if err != nil {
		return err
	}
	printTree(out, spans, b.names)
	return nil
}

// concurrentGets sends n identical GET path at once, holding the orders
// service until all n are in the REST BFF's handler, so that they
// overlap, and returns their answers and the upstream calls they made.
func concurrentGets(ctx context.Context, b *bff, path string, n int) ([]*restRun, calls, error) {
	before := b.svcs.counts()
	release := b.svcs.orders.hold()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	runs := make([]*restRun, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { runs[i], errs[i] = b.get(ctx, path) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.rest.active.Load() < int64(n) && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	inside := b.rest.active.Load()
	release()
	released = true
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if inside < int64(n) {
		return nil, nil, fmt.Errorf("GET %s: %d of %d requests reached the handler", path, inside, n)
	}
	return runs, b.svcs.counts().since(before), nil
}

// callLine is the count of calls and the calls.
func callLine(c calls) string {
	if c.total() == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", c.total(), c)
}
