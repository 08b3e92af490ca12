package strangler

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/otelpatterns/patterns/gateway"
)

// Target is a side of the facade: the legacy system or the new one.
type Target uint8

// The targets.
const (
	TargetLegacy Target = iota
	TargetNew
	numTargets
)

// String returns "legacy" or "new", the value of gateway.strangler.target.
func (t Target) String() string {
	switch t {
	case TargetLegacy:
		return "legacy"
	case TargetNew:
		return "new"
	}
	return "Target(" + strconv.Itoa(int(t)) + ")"
}

func (t Target) valid() bool { return t < numTargets }

// other is the side t is not.
func (t Target) other() Target { return 1 - t }

// The rules that decide, as gateway.strangler.rule says.
const (
	rulePath = iota
	ruleHeader
	ruleCookie
	ruleFlag
	rulePercent
	ruleDefault
	numRules
)

var ruleNames = [numRules]string{"path", "header", "cookie", "flag", "percent", "default"}

// rule is a compiled split rule: decide returns the target and true
// when the rule applies to the request.
type rule struct {
	kind   int
	decide func(*http.Request) (Target, bool)
}

// pathRule matches ServeMux patterns, reporting the ones ServeMux refuses.
func pathRule(t Target, patterns []string) (rule, []string) {
	var errs []string
	if len(patterns) == 0 {
		errs = append(errs, "name at least one pattern")
	}
	mux := http.NewServeMux()
	m := &marker{}
	for i, p := range patterns {
		if err := register(mux, p, m); err != nil {
			errs = append(errs, fmt.Sprintf("patterns[%d]: %v", i, err))
		}
	}
	return rule{kind: rulePath, decide: func(r *http.Request) (Target, bool) {
		h, _ := mux.Handler(r)
		return t, h == http.Handler(m)
	}}, errs
}

var registeredAt = regexp.MustCompile(` \(registered at [^)]*\)`)

// marker is the handler of the patterns of a path rule: a match is a
// request the mux hands to it (and not to its not-found or redirect
// handlers).
type marker struct{}

func (*marker) ServeHTTP(http.ResponseWriter, *http.Request) {}

func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			// ServeMux's message, on one line and without where the
			// patterns were registered (inside this package).
			msg := registeredAt.ReplaceAllString(fmt.Sprint(v), "")
			err = errors.New(strings.Join(strings.Fields(msg), " "))
		}
	}()
	if pattern == "" {
		return fmt.Errorf("must not be empty")
	}
	mux.Handle(pattern, h)
	return nil
}

func headerRule(name, value string, t Target) rule {
	name = http.CanonicalHeaderKey(name)
	return rule{kind: ruleHeader, decide: func(r *http.Request) (Target, bool) {
		for _, v := range r.Header[name] {
			if value == "" || v == value {
				return t, true
			}
		}
		return t, false
	}}
}

func cookieRule(name, value string, t Target) rule {
	return rule{kind: ruleCookie, decide: func(r *http.Request) (Target, bool) {
		for _, c := range r.CookiesNamed(name) {
			if value == "" || c.Value == value {
				return t, true
			}
		}
		return t, false
	}}
}

func flagRule(flag func(*http.Request) (Target, bool)) func(*http.Request) (Target, bool) {
	return func(r *http.Request) (t Target, ok bool) {
		if flag == nil {
			return 0, false
		}
		defer func() {
			if v := recover(); v != nil {
				t, ok = 0, false
				recordFlagPanic(r.Context(), v)
			}
		}()
		t, ok = flag(r)
		return t, ok && t.valid()
	}
}

// Key returns what a request is kept on one side by for the percentage
// split (a user's id, a session cookie, the client's address), and false
// when the request has none. Keys are hashed, never recorded.
type Key func(*http.Request) (string, bool)

// BySubject keys requests by the subject the authentication middleware
// found (gateway.PrincipalFrom): a JWT's sub claim, an API key's name.
func BySubject() Key {
	return func(r *http.Request) (string, bool) {
		p, ok := gateway.PrincipalFrom(r.Context())
		if !ok || p.Subject == "" {
			return "", false
		}
		return p.Subject, true
	}
}

// ByClaim keys requests by a claim of the caller's JWT
// (gateway.PrincipalFrom): a string or a number.
func ByClaim(name string) Key {
	return func(r *http.Request) (string, bool) {
		p, ok := gateway.PrincipalFrom(r.Context())
		if !ok {
			return "", false
		}
		switch v := p.Claims[name].(type) {
		case string:
			return v, v != ""
		case float64:
			return strconv.FormatFloat(v, 'g', -1, 64), true
		case fmt.Stringer: // json.Number
			return v.String(), true
		}
		return "", false
	}
}

// ByCookie keys requests by the value of a cookie, such as a session id.
func ByCookie(name string) Key {
	return func(r *http.Request) (string, bool) {
		c, err := r.Cookie(name)
		if err != nil || c.Value == "" {
			return "", false
		}
		return c.Value, true
	}
}

// ByHeader keys requests by a header's value.
func ByHeader(name string) Key {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) (string, bool) {
		v := r.Header[name]
		if len(v) == 0 || v[0] == "" {
			return "", false
		}
		return v[0], true
	}
}

// ByClientIP keys requests by the client's address as the gateway
// derived it through its trusted proxies (gateway.ClientIP), never from
// a header the client wrote. Callers behind one NAT share a side.
func ByClientIP() Key {
	return func(r *http.Request) (string, bool) {
		a, ok := gateway.ClientIP(r.Context())
		if !ok {
			return "", false
		}
		return a.String(), true
	}
}

// Bucket returns the bucket of a sticky key, in [0, 10000): a key goes
// to the new side when its bucket is below the percentage times 100. The
// hash is 64-bit FNV-1a followed by MurmurHash3's 64-bit finalizer
// (fmix64): both are fixed, public algorithms with no seed, so a key has
// the same bucket in every process, after every restart and on every
// replica of the gateway, which keeps a user on one side wherever the
// request lands. (hash/maphash is faster but seeded per process.) The
// finalizer spreads FNV-1a's low bits, which alone would put keys that
// differ only in their last character, such as user-1 and user-2, in
// related buckets.
func Bucket(key string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return int(h % buckets)
}

// decide returns the side of a request and the rule that chose it.
func (f *Facade) decide(r *http.Request) (Target, int) {
	for i := range f.rules {
		if t, ok := f.rules[i].decide(r); ok {
			return t, f.rules[i].kind
		}
	}
	bp := int(f.bp.Load())
	if bp == buckets {
		return TargetNew, rulePercent
	}
	// At 0% too the keys are looked for: a request without one counts
	// under rule default, so that the traffic no percentage will move is
	// seen before the first SetPercent.
	for _, k := range f.keys {
		if key, ok := k(r); ok {
			if bp > 0 && Bucket(key) < bp {
				return TargetNew, rulePercent
			}
			return TargetLegacy, rulePercent
		}
	}
	return TargetLegacy, ruleDefault
}
