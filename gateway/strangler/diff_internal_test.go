package strangler

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	cases := []struct {
		in   string
		want path
		err  string
	}{
		{in: "id", want: path{{lit: "id"}}},
		{in: "items.*.id", want: path{{lit: "items"}, {kind: segAny}, {lit: "id"}}},
		{in: "**.created_at", want: path{{kind: segDeep}, {lit: "created_at"}}},
		{in: `meta\.version`, want: path{{lit: "meta.version"}}},
		{in: `a.\*.\\`, want: path{{lit: "a"}, {lit: "*"}, {lit: `\`}}},
		{in: "items.0", want: path{{lit: "items"}, {lit: "0"}}},
		{in: "", err: "must not be empty"},
		{in: "a..b", err: "empty segment"},
		{in: ".a", err: "empty segment"},
		{in: "a.", err: "empty segment"},
		{in: `a\`, err: "backslash"},
	}
	for _, c := range cases {
		got, err := parsePath(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parsePath(%q) = %v, %v; want an error with %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("parsePath(%q) = %v, %v; want %v", c.in, got, err, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("parsePath(%q)[%d] = %+v; want %+v", c.in, i, got[i], c.want[i])
			}
		}
	}
}

func TestPathMatch(t *testing.T) {
	cases := []struct {
		path string
		keys []string
		want bool
	}{
		{"id", []string{"id"}, true},
		{"id", []string{"items", "0", "id"}, false},
		{"items.*.id", []string{"items", "3", "id"}, true},
		{"items.*.id", []string{"items", "3", "sku"}, false},
		{"items.*.id", []string{"items", "3"}, false},
		{"**.created_at", []string{"created_at"}, true},
		{"**.created_at", []string{"a", "b", "2", "created_at"}, true},
		{"**.created_at", []string{"created_at", "x"}, false},
		{"a.**", []string{"a"}, true},
		{"a.**.z", []string{"a", "z"}, true},
		{"a.**.z", []string{"a", "b", "c", "z"}, true},
		{`\*`, []string{"*"}, true},
		{`\*`, []string{"x"}, false},
	}
	for _, c := range cases {
		p, err := parsePath(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.match(c.keys); got != c.want {
			t.Errorf("%q.match(%q) = %v; want %v", c.path, c.keys, got, c.want)
		}
	}
}

func jsonResp(status int, body string) response {
	return response{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

func ignores(t *testing.T, ps ...string) []path {
	t.Helper()
	var out []path
	for _, p := range ps {
		pp, err := parsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pp)
	}
	return out
}

// fields renders differences as "field legacy new" lines, "-" for a
// side that lacks the field.
func fields(ds []FieldDiff) string {
	var b strings.Builder
	for _, d := range ds {
		l, n := string(d.Legacy), string(d.New)
		if l == "" {
			l = "-"
		}
		if n == "" {
			n = "-"
		}
		b.WriteString(d.Field + " " + l + " " + n + "\n")
	}
	return b.String()
}

func TestCompare(t *testing.T) {
	cases := []struct {
		name           string
		legacy, modern response
		headers        []string
		ignore         []string
		want           string
	}{
		{
			name:   "equal documents, keys reordered, numbers spelled differently",
			legacy: jsonResp(200, `{"a":1,"b":[1.0,"x",true,null],"c":{"d":1e3}}`),
			modern: jsonResp(200, `{"c":{"d":1000},"b":[1,"x",true,null],"a":1.00}`),
		},
		{
			name:   "ignored fields",
			legacy: jsonResp(200, `{"id":"a1","created_at":"t1","items":[{"id":1,"p":2,"m":{"created_at":"x"}}]}`),
			modern: jsonResp(200, `{"id":"b7","created_at":"t2","items":[{"id":9,"p":2,"m":{"created_at":"y"}}]}`),
			ignore: []string{"id", "**.created_at", "items.*.id"},
		},
		{
			name:   "ignored fields may be missing on one side",
			legacy: jsonResp(200, `{"id":"a1","v":1}`),
			modern: jsonResp(200, `{"v":1}`),
			ignore: []string{"id"},
		},
		{
			name:   "a difference next to ignored ones",
			legacy: jsonResp(200, `{"id":"a1","items":[{"id":1,"price":10},{"id":2,"price":5}]}`),
			modern: jsonResp(200, `{"id":"b2","items":[{"id":3,"price":10},{"id":4,"price":6}]}`),
			ignore: []string{"id", "items.*.id"},
			want:   "body.items.1.price 5 6\n",
		},
		{
			name:   "missing and extra keys, array lengths, types",
			legacy: jsonResp(200, `{"a":1,"b":[1,2,3],"c":"1","d":{"x":1}}`),
			modern: jsonResp(200, `{"b":[1,2],"c":1,"d":[1],"e":null}`),
			want:   "body.a 1 -\nbody.b.2 3 -\nbody.c \"1\" 1\nbody.d {\"x\":1} [1]\nbody.e - null\n",
		},
		{
			name:    "status and headers",
			legacy:  response{Status: 200, Header: http.Header{"X-A": {"1"}, "Cache-Control": {"no-store"}}, Body: []byte("ok")},
			modern:  response{Status: 404, Header: http.Header{"X-A": {"1", "2"}}, Body: []byte("ok")},
			headers: []string{"X-A", "Cache-Control", "X-None"},
			want:    "status 200 404\nheader.X-A \"1\" \"1, 2\"\nheader.Cache-Control \"no-store\" -\n",
		},
		{
			name:   "non-JSON bodies, byte for byte",
			legacy: response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("hello world")},
			modern: response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("hello there")},
			want:   "body \"at byte 6 of 11: world\" \"at byte 6 of 11: there\"\n",
		},
		{
			name:   "JSON that does not parse is compared byte for byte",
			legacy: jsonResp(200, `{"a":1}`),
			modern: jsonResp(200, `{"a":1} trailing`),
			want:   "body \"at byte 7 of 7: \" \"at byte 7 of 16:  trailing\"\n",
		},
		{
			name:   "a key with a dot is escaped in the field",
			legacy: jsonResp(200, `{"meta.v":1,"*":2}`),
			modern: jsonResp(200, `{"meta.v":2,"*":3}`),
			want:   "body.\\* 2 3\nbody.meta\\.v 1 2\n",
		},
		{
			name:   "gzip bodies are compared decoded",
			legacy: gzipResp(t, `{"a":1}`),
			modern: jsonResp(200, `{"a":2}`),
			want:   "body.a 1 2\n",
		},
		{
			name:   "a shadow answer longer than the bound",
			legacy: jsonResp(200, `{"a":1}`),
			modern: response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"a":1,"b":`), Truncated: true},
			want:   "body \"7 bytes\" \"more than 11 bytes\"\n",
		},
	}
	for _, c := range cases {
		got, omitted := compare(c.legacy, c.modern, c.headers, ignores(t, c.ignore...))
		if fields(got) != c.want || omitted != 0 {
			t.Errorf("%s: compare() =\n%s(omitted %d); want\n%s", c.name, fields(got), omitted, c.want)
		}
	}
}

func gzipResp(t *testing.T, body string) response {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, Body: buf.Bytes()}
}

// TestCompareBounds: at most maxFields differences are kept, the rest
// counted, and long values are shortened.
func TestCompareBounds(t *testing.T) {
	var a, b []int
	for i := range 50 {
		a, b = append(a, i), append(b, i+1)
	}
	la, _ := json.Marshal(a)
	lb, _ := json.Marshal(b)
	got, omitted := compare(jsonResp(200, string(la)), jsonResp(200, string(lb)), nil, nil)
	if len(got) != maxFields || omitted != 50-maxFields {
		t.Errorf("compare() = %d fields, %d omitted; want %d and %d", len(got), omitted, maxFields, 50-maxFields)
	}
	long := strings.Repeat("é", 400)
	got, _ = compare(jsonResp(200, `{"s":"`+long+`"}`), jsonResp(200, `{"s":"x"}`), nil, nil)
	if len(got) != 1 || len(got[0].Legacy) > maxValue+64 || !json.Valid(got[0].Legacy) || !strings.Contains(string(got[0].Legacy), "bytes)") {
		t.Errorf("a long value: %s", got[0].Legacy)
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"id", "items.*.id", "**.x", `a\.b`, "a..b", `\`, "*.**.*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePath(s)
		if err != nil {
			return
		}
		// A parsed path matches the keys it spells literally.
		var keys []string
		for _, seg := range p {
			if seg.kind != segLiteral {
				return
			}
			keys = append(keys, seg.lit)
		}
		if !p.match(keys) {
			t.Errorf("parsePath(%q) does not match its own keys %q", s, keys)
		}
		// And the field naming of those keys parses back to them,
		// unless it was too long to be kept whole.
		d := &differ{keys: keys}
		n := len("body")
		for _, k := range keys {
			n += 1 + 2*len(k) // a dot, and each byte perhaps escaped
		}
		if n > maxValue {
			return
		}
		back, err := parsePath(strings.TrimPrefix(d.field(), "body."))
		if err != nil || !back.match(keys) {
			t.Errorf("field %q of %q: parse %v, %v", d.field(), keys, back, err)
		}
	})
}

// TestScalarEqualNumbers: JSON numbers compare by value, from their
// digits and exponents, without working the value out.
func TestScalarEqualNumbers(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"1", "1.0", true},
		{"1e3", "1000", true},
		{"1E3", "1000.000", true},
		{"1.5e1", "15", true},
		{"0", "-0", true},
		{"0.0", "0e99", true},
		{"-1", "-1.00", true},
		{"0.001", "1e-3", true},
		{"12345678901234567890", "1.2345678901234567890e19", true},
		{"1e999999", "10e999998", true},
		{"1", "-1", false},
		{"1e3", "1e4", false},
		{"0.1", "1", false},
		{"1e999999", "1e999998", false},
		{"120", "12", false},
		{"1.05", "1.5", false},
		// Exponents no decoder reads as a finite number are not
		// compared by value.
		{"1e9999999999999999999", "10e9999999999999999998", false},
	} {
		if got := scalarEqual(json.Number(c.a), json.Number(c.b)); got != c.want {
			t.Errorf("scalarEqual(%s, %s) = %v; want %v", c.a, c.b, got, c.want)
		}
		if got := scalarEqual(json.Number(c.b), json.Number(c.a)); got != c.want {
			t.Errorf("scalarEqual(%s, %s) = %v; want %v", c.b, c.a, got, c.want)
		}
	}
}
