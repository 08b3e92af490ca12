package strangler

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// response is an answer as the comparison sees it.
type response struct {
	Status    int
	Header    http.Header
	Body      []byte
	Truncated bool // the body went on past what was kept
}

// FieldDiff is one difference between the legacy side's answer and the
// new side's.
type FieldDiff struct {
	// Field names what differs: "status", "header.{Name}", "body" for a
	// body compared byte for byte (or a JSON body's root), or "body."
	// followed by the path of a JSON value, in the syntax of
	// [Shadow].Ignore ("body.items.0.price"), shortened past 512 bytes
	// (ending in "…").
	Field string `json:"field"`
	// Legacy and New are the values on each side, as JSON: the status
	// as a number, a header's values joined with ", " as a string, a
	// JSON value as it was (shortened past 512 bytes into a string), and
	// for a body compared byte for byte, a string of the bytes from the
	// first difference on. A side that lacks the field has none.
	Legacy json.RawMessage `json:"legacy,omitempty"`
	New    json.RawMessage `json:"new,omitempty"`
}

// maxFields bounds the differences kept for one request; the rest are
// counted.
const maxFields = 32

// maxValue bounds the JSON of one value in a FieldDiff.
const maxValue = 512

// maxDecoded bounds a gzip body decoded for the comparison.
const maxDecoded = 8 << 20

// compare compares the legacy and new answers: status, the headers
// named (canonical), and the bodies, JSON structurally without the
// ignored paths, others byte for byte. It returns at most maxFields
// differences and the number left out.
func compare(legacy, modern response, headers []string, ignore []path) ([]FieldDiff, int) {
	d := newDiffer(ignore)
	if legacy.Status != modern.Status {
		d.add("status", strconv.AppendInt(nil, int64(legacy.Status), 10), strconv.AppendInt(nil, int64(modern.Status), 10))
	}
	for _, h := range headers {
		lv, lok := legacy.Header[h]
		mv, mok := modern.Header[h]
		l, m := strings.Join(lv, ", "), strings.Join(mv, ", ")
		if lok != mok || l != m && !(h == "Content-Type" && sameMediaType(l, m)) {
			d.add("header."+h, jsonString(l, lok), jsonString(m, mok))
		}
	}
	d.bodies(legacy, modern)
	return d.out, d.omitted
}

func jsonString(s string, ok bool) json.RawMessage {
	if !ok {
		return nil
	}
	b, _ := json.Marshal(s)
	return b
}

type differ struct {
	ignore  []path
	keys    []string
	out     []FieldDiff
	omitted int

	// states are where each ignore path's match stands after each key
	// of keys (a frame of width positions per depth, the root's first):
	// for path p, position i is set when p[:i] matches the keys so far.
	// Kept as the walk descends, it makes matching a node cost the
	// paths' lengths, not its depth, which a "**" would have to search.
	states []bool
	width  int
}

func newDiffer(ignore []path) *differ {
	d := &differ{ignore: ignore}
	for _, p := range ignore {
		d.width += len(p) + 1
	}
	d.states = make([]bool, d.width)
	o := 0
	for _, p := range ignore {
		d.states[o] = true
		closeDeep(p, d.states[o:o+len(p)+1])
		o += len(p) + 1
	}
	return d
}

// closeDeep adds to the positions of p in set those that a "**"
// reaches by matching no key.
func closeDeep(p path, set []bool) {
	for i, seg := range p {
		if set[i] && seg.kind == segDeep {
			set[i+1] = true
		}
	}
}

// push descends to the key k.
func (d *differ) push(k string) {
	d.keys = append(d.keys, k)
	n := len(d.states)
	d.states = append(d.states, make([]bool, d.width)...)
	prev, next := d.states[n-d.width:n], d.states[n:]
	o := 0
	for _, p := range d.ignore {
		for i, seg := range p {
			if !prev[o+i] {
				continue
			}
			switch {
			case seg.kind == segDeep:
				next[o+i] = true
			case seg.kind == segAny, seg.lit == k:
				next[o+i+1] = true
			}
		}
		closeDeep(p, next[o:o+len(p)+1])
		o += len(p) + 1
	}
}

// pop goes back up from the last key pushed.
func (d *differ) pop() {
	d.keys = d.keys[:len(d.keys)-1]
	d.states = d.states[:len(d.states)-d.width]
}

func (d *differ) add(field string, legacy, modern json.RawMessage) {
	if len(d.out) >= maxFields {
		d.omitted++
		return
	}
	d.out = append(d.out, FieldDiff{Field: field, Legacy: legacy, New: modern})
}

func (d *differ) bodies(legacy, modern response) {
	if legacy.Truncated || modern.Truncated {
		desc := func(r response) json.RawMessage {
			if r.Truncated {
				return jsonString(fmt.Sprintf("more than %d bytes", len(r.Body)), true)
			}
			return jsonString(fmt.Sprintf("%d bytes", len(r.Body)), true)
		}
		d.add("body", desc(legacy), desc(modern))
		return
	}
	lb, mb := decoded(legacy), decoded(modern)
	if isJSON(legacy.Header) && isJSON(modern.Header) {
		lv, lerr := parseJSON(lb)
		mv, merr := parseJSON(mb)
		if lerr == nil && merr == nil {
			d.value(lv, mv)
			return
		}
	}
	if !bytes.Equal(lb, mb) {
		i := 0
		for i < len(lb) && i < len(mb) && lb[i] == mb[i] {
			i++
		}
		d.add("body", excerpt(lb, i), excerpt(mb, i))
	}
}

// excerpt is up to 64 bytes of b from offset i, as a JSON string that
// says where it starts.
func excerpt(b []byte, i int) json.RawMessage {
	end := min(len(b), i+64)
	part := b[i:end]
	s := ""
	if utf8.Valid(part) {
		s = string(part)
	} else {
		s = fmt.Sprintf("%x", part)
	}
	more := ""
	if end < len(b) {
		more = "…"
	}
	return jsonString(fmt.Sprintf("at byte %d of %d: %s%s", i, len(b), s, more), true)
}

// decoded is the body, gunzipped when it says it is gzip, unless it
// decodes to more than maxDecoded bytes: then it is compared as it came,
// not by the part of it decoded.
func decoded(r response) []byte {
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), "gzip") {
		return r.Body
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.Body))
	if err != nil {
		return r.Body
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil || len(b) > maxDecoded {
		return r.Body
	}
	return b
}

func isJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// parseJSON decodes one JSON document, numbers kept as written.
func parseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("strangler: more than one JSON value")
	}
	return v, nil
}

// value compares two JSON values at the current path.
func (d *differ) value(a, b any) {
	if d.ignored() {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := slices.Sorted(maps.Keys(av))
		for k := range bv {
			if _, dup := av[k]; !dup {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			x, xok := av[k]
			y, yok := bv[k]
			d.push(k)
			switch {
			case xok && yok:
				d.value(x, y)
			case !d.ignored():
				d.addValues(x, xok, y, yok)
			}
			d.pop()
		}
		return
	case []any:
		bv, ok := b.([]any)
		if !ok {
			break
		}
		for i := range max(len(av), len(bv)) {
			d.push(strconv.Itoa(i))
			switch {
			case i < len(av) && i < len(bv):
				d.value(av[i], bv[i])
			case !d.ignored():
				var x, y any
				if i < len(av) {
					x = av[i]
				}
				if i < len(bv) {
					y = bv[i]
				}
				d.addValues(x, i < len(av), y, i < len(bv))
			}
			d.pop()
		}
		return
	default:
		if scalarEqual(a, b) {
			return
		}
	}
	d.addValues(a, true, b, true)
}

// addValues adds a difference of JSON values at the current path. Past
// maxFields it only counts it, without spelling the path or the values,
// which cost as much as the path is deep and the values are long.
func (d *differ) addValues(a any, aok bool, b any, bok bool) {
	if len(d.out) >= maxFields {
		d.omitted++
		return
	}
	d.add(d.field(), marshal(a, aok), marshal(b, bok))
}

// ignored reports whether an ignore path matches the current path.
func (d *differ) ignored() bool {
	top := d.states[len(d.states)-d.width:]
	o := 0
	for _, p := range d.ignore {
		o += len(p) + 1
		if top[o-1] {
			return true
		}
	}
	return false
}

// field is "body" and the current path, escaped as Ignore reads it.
func (d *differ) field() string {
	var b strings.Builder
	b.WriteString("body")
	for _, k := range d.keys {
		b.WriteByte('.')
		if k == "*" || k == "**" || strings.ContainsAny(k, `.\`) {
			for i := 0; i < len(k); i++ {
				if c := k[i]; c == '.' || c == '*' || c == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(k[i])
			}
			continue
		}
		b.WriteString(k)
	}
	// Keys are as long as the answer makes them: the name is bounded
	// like the values.
	if b.Len() <= maxValue {
		return b.String()
	}
	f := b.String()
	cut := maxValue
	for cut > maxValue-utf8.UTFMax && !utf8.RuneStart(f[cut]) {
		cut-- // a key that is not UTF-8 is cut anywhere
	}
	return f[:cut] + "…"
}

// scalarEqual compares JSON scalars; numbers by value, so 1.0 equals 1
// and 1e3 equals 1000.
func scalarEqual(a, b any) bool {
	switch av := a.(type) {
	case json.Number:
		bv, ok := b.(json.Number)
		if !ok {
			return false
		}
		if av == bv {
			return true
		}
		x, xok := parseDecimal(string(av))
		y, yok := parseDecimal(string(bv))
		return xok && yok && x == y
	case map[string]any, []any:
		return false
	}
	return a == b // string, bool, nil
}

// marshal is v as JSON, shortened past maxValue bytes; nil when the side
// lacks it.
func marshal(v any, ok bool) json.RawMessage {
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return jsonString(err.Error(), true)
	}
	if len(b) > maxValue {
		cut := maxValue
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return jsonString(fmt.Sprintf("%s… (%d bytes)", b[:cut], len(b)), true)
	}
	return b
}

// path is a parsed Ignore path.
type path []segment

type segment struct {
	lit  string
	kind uint8
}

const (
	segLiteral = iota
	segAny     // *: one key or index
	segDeep    // **: any number of them, none included
)

// parsePath parses the syntax of [Shadow].Ignore.
func parsePath(s string) (path, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	var (
		p       path
		cur     strings.Builder
		escaped bool // the segment has an escaped character, so it is literal
	)
	end := func() error {
		text := cur.String()
		switch {
		case text == "":
			return errors.New("empty segment (two dots, or a dot at an end)")
		case !escaped && text == "*":
			p = append(p, segment{kind: segAny})
		case !escaped && text == "**":
			p = append(p, segment{kind: segDeep})
		default:
			p = append(p, segment{lit: text})
		}
		cur.Reset()
		escaped = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("a backslash at the end escapes nothing")
			}
			i++
			cur.WriteByte(s[i])
			escaped = true
		case '.':
			if err := end(); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(c)
		}
	}
	if err := end(); err != nil {
		return nil, err
	}
	return p, nil
}

// match reports whether the path matches keys, the whole of them.
func (p path) match(keys []string) bool {
	if len(p) == 0 {
		return len(keys) == 0
	}
	switch p[0].kind {
	case segDeep:
		for i := 0; i <= len(keys); i++ {
			if p[1:].match(keys[i:]) {
				return true
			}
		}
		return false
	case segAny:
		return len(keys) > 0 && p[1:].match(keys[1:])
	}
	return len(keys) > 0 && keys[0] == p[0].lit && p[1:].match(keys[1:])
}

// decimal is a JSON number as digits × 10^exp, with neither leading nor
// trailing zeros in digits: two numbers are equal when their decimals
// are. Zero is the empty digits, whatever its sign.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// parseDecimal reads a JSON number without working out its value: a
// number such as 1e999999, 8 bytes, would be a million digits as a
// big.Rat, and an answer of them would hold a worker for hours.
// Exponents past ±10^15 are refused (false): numbers that no JSON
// decoder reads as anything but infinity.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	mant, expPart, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		e, err := strconv.ParseInt(expPart, 10, 64)
		if err != nil || e > 1e15 || e < -1e15 {
			return d, false
		}
		d.exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart == "" || !allDigits(intPart) || !allDigits(frac) {
		return d, false
	}
	d.exp -= int64(len(frac))
	digits := strings.TrimLeft(intPart+frac, "0")
	n := len(digits)
	digits = strings.TrimRight(digits, "0")
	d.exp += int64(n - len(digits))
	d.digits = digits
	if digits == "" {
		return decimal{}, true
	}
	return d, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// sameMediaType reports whether two Content-Type values name the same
// media type (RFC 9110, 8.3.1): type, subtype and parameter names are
// compared without case, as is the charset's value, and the spacing
// around ";" is not part of it. "application/json;charset=UTF-8" is
// "application/json; charset=utf-8".
func sameMediaType(a, b string) bool {
	at, ap, aerr := mime.ParseMediaType(a)
	bt, bp, berr := mime.ParseMediaType(b)
	if aerr != nil || berr != nil || at != bt || len(ap) != len(bp) {
		return false
	}
	for k, av := range ap {
		bv, ok := bp[k]
		if !ok || av != bv && !(k == "charset" && strings.EqualFold(av, bv)) {
			return false
		}
	}
	return true
}
