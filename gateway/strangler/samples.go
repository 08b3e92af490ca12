package strangler

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Diff is a shadowed request whose two answers differed.
type Diff struct {
	// Time is when the primary answered.
	Time time.Time `json:"time"`
	// Method and Path are the request's; the query is left out, as it
	// may carry secrets.
	Method string `json:"method"`
	Path   string `json:"path"`
	// Route is the http.route of the gateway route that served it.
	Route string `json:"route,omitempty"`
	// Primary is the side that answered the client: "legacy" or "new".
	Primary string `json:"primary"`
	// TraceID is the trace of the request, ShadowTraceID that of its
	// shadow copy (linked to it), when they were traced.
	TraceID       string `json:"trace_id,omitempty"`
	ShadowTraceID string `json:"shadow_trace_id,omitempty"`
	// Fields are the differences, at most 32; Omitted counts the rest.
	Fields  []FieldDiff `json:"fields"`
	Omitted int         `json:"omitted,omitempty"`
}

// ring keeps the latest differences.
type ring struct {
	mu   sync.Mutex
	buf  []Diff
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]Diff, n)} }

func (r *ring) add(d Diff) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = d
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// list returns the differences kept, newest first.
func (r *ring) list() []Diff {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]Diff, 0, n)
	for i := 1; i <= n; i++ {
		d := r.buf[(r.next-i+len(r.buf))%len(r.buf)]
		d.Fields = slices.Clone(d.Fields) // the caller's to change, values too
		for j := range d.Fields {
			f := &d.Fields[j]
			f.Legacy, f.New = bytes.Clone(f.Legacy), bytes.Clone(f.New)
		}
		out = append(out, d)
	}
	return out
}

// Diffs returns the latest differences the shadow comparisons found,
// newest first, at most [Shadow].Samples of them; nil without
// [WithShadow].
func (f *Facade) Diffs() []Diff {
	if f.shadow == nil {
		return nil
	}
	return f.shadow.samples.list()
}

// DiffReport is what [Facade.DiffHandler] serves.
type DiffReport struct {
	// Results counts the shadow copies by result (match, mismatch,
	// error, dropped) since the facade was built, over all routes.
	Results map[string]int64 `json:"results"`
	// Diffs are the latest differences, newest first.
	Diffs []Diff `json:"diffs"`
}

// DiffHandler returns a handler that serves a [DiffReport] as JSON to
// GET and HEAD requests. The differences hold paths (without their
// queries), the compared headers' values, and parts of the answers (up
// to 512 bytes of each differing JSON value, 64 bytes of another body),
// which may be personal data; no request header is kept. Mount it on an
// admin route behind authentication (gateway/auth), not on a public one.
func (f *Facade) DiffHandler() http.Handler {
	if f == nil || f.tel == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { notMade(w) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		rep := DiffReport{Results: f.tel.totals(), Diffs: f.Diffs()}
		if rep.Diffs == nil {
			rep.Diffs = []Diff{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	})
}
