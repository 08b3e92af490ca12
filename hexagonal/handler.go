package hexagonal

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Handler returns the HTTP handler of the health's endpoints, in the
// manner of Kubernetes' API server:
//
//   - GET /livez runs the liveness checks, GET /readyz every check (and
//     fails while the app starts or stops). They answer 200 with "ok",
//     or 503 with one line per check ("[+]db ok", "[-]db failed: reason
//     withheld") and "livez check failed"; ?verbose lists the checks on
//     success too, and ?exclude=name (repeatable) leaves a check out
//     (with a warning line for a name that matches no check).
//   - GET /livez/{name} and /readyz/{name} run one check.
//   - GET /health answers JSON: the overall status, the phase, and each
//     check's status and latency; ?verbose adds each failure's error and
//     the time of each result. /livez and /readyz answer the same JSON
//     when the request accepts application/json.
//
// Failure reasons are withheld from the text answers, as Kubernetes does,
// and logged instead; the JSON answers carry them only with ?verbose, so
// do not expose the health's port to the public.
//
// Mount the handler at the root of a mux pattern per path, or wrap it in
// [http.StripPrefix] to serve it under a prefix.
func (h *Health) Handler() http.Handler { return healthHandler{h} }

type healthHandler struct{ h *Health }

func (hh healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	endpoint, name, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	var ready bool
	switch endpoint {
	case "livez":
	case "readyz":
		ready = true
	case "health":
		if name != "" {
			http.NotFound(w, r)
			return
		}
		ready = true
	default:
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	_, verbose := q["verbose"]
	var (
		rep               Report
		excluded, unknown []string
	)
	if name != "" {
		s := hh.h.byName[name]
		if s == nil || (!ready && s.c.Kind != Liveness) {
			http.NotFound(w, r)
			return
		}
		rep = Report{Checks: make([]CheckResult, 1)}
		hh.h.collect(r.Context(), []*checkState{s}, rep.Checks)
		rep.OK, rep.Phase = rep.Checks[0].Err == nil, phaseName(hh.h.phase.Load())
	} else {
		var exclude map[string]bool
		for _, n := range q["exclude"] {
			if exclude == nil {
				exclude = map[string]bool{}
			}
			exclude[n] = true
		}
		rep = hh.h.report(r.Context(), ready, exclude)
		for n := range exclude {
			if s := hh.h.byName[n]; s != nil && (ready || s.c.Kind == Liveness) {
				excluded = append(excluded, n)
			} else {
				unknown = append(unknown, strconv.Quote(n))
			}
		}
		slices.Sort(excluded)
		slices.Sort(unknown)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	status := http.StatusOK
	if !rep.OK {
		status = http.StatusServiceUnavailable
	}
	if endpoint == "health" || acceptsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(jsonReport(rep, ready && name == "", verbose))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(textReport(rep, endpoint, ready && name == "", verbose || !rep.OK, excluded, unknown))
}

func acceptsJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "application/json") {
			return true
		}
	}
	return false
}

// lifecycleCheck is the name under which readiness reports the app's
// phase, as Kubernetes' API server reports its shutdown.
const lifecycleCheck = "lifecycle"

func textReport(rep Report, endpoint string, withPhase, list bool, excluded, unknown []string) []byte {
	if !list {
		return []byte("ok")
	}
	var b bytes.Buffer
	if withPhase {
		if rep.Phase == "running" {
			b.WriteString("[+]" + lifecycleCheck + " ok\n")
		} else {
			b.WriteString("[-]" + lifecycleCheck + " failed: reason withheld\n")
		}
	}
	for _, c := range rep.Checks {
		if c.Err == nil {
			b.WriteString("[+]" + c.Name + " ok\n")
		} else {
			b.WriteString("[-]" + c.Name + " failed: reason withheld\n")
		}
	}
	for _, n := range excluded {
		b.WriteString("[+]" + n + " excluded: ok\n")
	}
	if len(unknown) > 0 {
		b.WriteString("warn: some health checks cannot be excluded: no matches for " + strings.Join(unknown, ",") + "\n")
	}
	if rep.OK {
		b.WriteString(endpoint + " check passed\n")
	} else {
		b.WriteString(endpoint + " check failed\n")
	}
	return b.Bytes()
}

type jsonCheck struct {
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`
	Status    string     `json:"status"`
	LatencyMS float64    `json:"latency_ms"`
	Error     string     `json:"error,omitempty"`
	At        *time.Time `json:"checked_at,omitempty"`
}

type jsonBody struct {
	Status string      `json:"status"`
	Phase  string      `json:"phase,omitempty"`
	Checks []jsonCheck `json:"checks"`
}

func jsonReport(rep Report, withPhase, verbose bool) jsonBody {
	body := jsonBody{Status: passFail(rep.OK), Checks: make([]jsonCheck, 0, len(rep.Checks))}
	if withPhase {
		body.Phase = rep.Phase
	}
	for _, c := range rep.Checks {
		jc := jsonCheck{
			Name:      c.Name,
			Kind:      c.Kind.String(),
			Status:    passFail(c.Err == nil),
			LatencyMS: math.Round(float64(c.Latency)/float64(time.Microsecond)) / 1000,
		}
		if verbose {
			if c.Err != nil {
				jc.Error = c.Err.Error()
			}
			at := c.At.UTC()
			jc.At = &at
		}
		body.Checks = append(body.Checks, jc)
	}
	return body
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}
