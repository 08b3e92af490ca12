package transcode

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/otelpatterns/patterns/gateway"
)

// DefaultMaxMessageBytes bounds a request or response message when no
// [WithMaxMessageBytes] is given: 4 MiB, gRPC's own default for a
// received message.
const DefaultMaxMessageBytes = 4 << 20

// Option configures a [Transcoder].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	services     []protoreflect.ServiceDescriptor
	maxBytes     int64
	upstream     http.Handler
	upstreamGzip bool
	errs         []error
}

// WithService adds the gRPC service of that full name
// ("inventory.v1.InventoryService"), whose schema must be registered with
// the protobuf runtime, as importing its generated Go package does. At
// least one service is required.
func WithService(fullName string) Option {
	return optionFunc(func(c *config) {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(fullName))
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("WithService(%q): %w (import the service's generated package)", fullName, err))
			return
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			c.errs = append(c.errs, fmt.Errorf("WithService(%q): not a service", fullName))
			return
		}
		c.services = append(c.services, sd)
	})
}

// WithServiceDescriptor adds a gRPC service by its descriptor, for
// schemas not registered globally (loaded at run time, say).
func WithServiceDescriptor(sd protoreflect.ServiceDescriptor) Option {
	return optionFunc(func(c *config) {
		if sd == nil {
			c.errs = append(c.errs, errors.New("WithServiceDescriptor: nil descriptor"))
			return
		}
		c.services = append(c.services, sd)
	})
}

// WithMaxMessageBytes bounds the size of each request and response
// message the transcoder buffers, compressed and decompressed alike; a
// larger one fails the call with RESOURCE_EXHAUSTED (HTTP 429 for REST
// and Connect unary clients, as vanguard maps it). The bound on
// decompressed messages is what stops a small gzip body (a "zip bomb")
// from inflating to gigabytes in the gateway's memory. The default is
// [DefaultMaxMessageBytes] (4 MiB). It must be in 1..4 GiB-1.
func WithMaxMessageBytes(n int64) Option {
	return optionFunc(func(c *config) { c.maxBytes = n })
}

// WithUpstreamGzip tells the transcoder that the upstream accepts gzip
// messages: a client's gzip message in an enveloped protocol (gRPC,
// gRPC-Web, Connect streaming) then goes to the upstream compressed, as
// it came, instead of being decompressed in the gateway. Without it the
// transcoder sends every message uncompressed, since a grpc-go server
// decompresses only with the codecs it registered, and registers none by
// default: a compressed message would fail with UNIMPLEMENTED. Give it
// only when every target accepts gzip (grpc-go does once the server
// imports google.golang.org/grpc/encoding/gzip). A gzip REST or Connect
// unary body is decompressed either way, to be transcoded or bounded.
func WithUpstreamGzip() Option {
	return optionFunc(func(c *config) { c.upstreamGzip = true })
}

// WithUpstreamHandler sends the transcoded gRPC requests to h instead of
// the gateway's upstream: an in-process *grpc.Server, or a handler of
// tests. The gateway's balancing, breakers and retries are then h's
// business.
func WithUpstreamHandler(h http.Handler) Option {
	return optionFunc(func(c *config) {
		if h == nil {
			c.errs = append(c.errs, errors.New("WithUpstreamHandler: nil handler"))
			return
		}
		c.upstream = h
	})
}

// Transcoder is a gateway route handler that serves gRPC services of an
// upstream to clients of other protocols: REST/JSON (by the methods'
// google.api.http annotations), gRPC-Web and Connect (unary and server
// streaming), and plain gRPC too. It converts each call to gRPC and
// sends it to the upstream through the gateway ([gateway.ProxyTo]), so
// the upstream's balancing, health checks, breakers and retries apply,
// and converts the answer back, gRPC status to HTTP status (as vanguard
// maps them) and trailers included. Errors reach REST and Connect
// clients as JSON ({"code": "not_found", "message": ...}, a
// google.rpc.Status for REST).
//
// A Transcoder is safe for concurrent use.
type Transcoder struct {
	vg          *vanguard.Transcoder
	patterns    []string
	maxBytes    int64
	restStreams []restStream // REST bindings that vanguard cannot serve
	calls       sync.Pool    // of *call
}

// New returns a transcoder for the services given by [WithService] or
// [WithServiceDescriptor] of the gateway upstream named upstream, or an
// error naming every bad option. The upstream must speak gRPC: set its
// [gateway.Upstream].H2C for a server without TLS; over TLS the gateway's
// transport negotiates HTTP/2 by ALPN (a [gateway.WithTransport] of your
// own must keep ForceAttemptHTTP2 or set Protocols to allow HTTP/2).
//
// Serve it from the gateway's routes ([Transcoder.Routes]): it proxies
// through the gateway serving the request, so outside a gateway its
// requests get the gateway's 503 (UNAVAILABLE), unless
// [WithUpstreamHandler] is given.
func New(upstream string, opts ...Option) (*Transcoder, error) {
	cfg := config{maxBytes: DefaultMaxMessageBytes}
	for i, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	if upstream == "" && cfg.upstream == nil {
		cfg.errs = append(cfg.errs, errors.New("upstream: must not be empty"))
	}
	if len(cfg.services) == 0 && len(cfg.errs) == 0 {
		cfg.errs = append(cfg.errs, errors.New("no service: give one with WithService"))
	}
	if cfg.maxBytes <= 0 || cfg.maxBytes >= 1<<32 {
		cfg.errs = append(cfg.errs, fmt.Errorf("WithMaxMessageBytes(%d): must be in 1..%d", cfg.maxBytes, int64(1<<32-1)))
	}
	seen := map[protoreflect.FullName]bool{}
	for _, sd := range cfg.services {
		if seen[sd.FullName()] {
			cfg.errs = append(cfg.errs, fmt.Errorf("WithService(%q): given twice", sd.FullName()))
		}
		seen[sd.FullName()] = true
	}
	if len(cfg.errs) > 0 {
		return nil, fmt.Errorf("transcode: %w", errors.Join(cfg.errs...))
	}
	h := cfg.upstream
	if h == nil {
		h = gateway.ProxyTo(upstream)
	}
	svcOpts := []vanguard.ServiceOption{
		vanguard.WithTargetProtocols(vanguard.ProtocolGRPC),
		vanguard.WithTargetCodecs(vanguard.CodecProto),
		vanguard.WithMaxMessageBufferBytes(uint32(cfg.maxBytes)),
		vanguard.WithNoTargetCompression(),
	}
	if cfg.upstreamGzip {
		svcOpts[len(svcOpts)-1] = vanguard.WithTargetCompression(vanguard.CompressionGzip)
	}
	services := make([]*vanguard.Service, len(cfg.services))
	up := &upstreamHandler{h: h}
	for i, sd := range cfg.services {
		services[i] = vanguard.NewServiceWithSchema(sd, up, svcOpts...)
	}
	maxBytes := cfg.maxBytes
	vg, err := vanguard.NewTranscoder(services, vanguard.WithCompression(vanguard.CompressionGzip,
		func() connect.Compressor { return gzip.NewWriter(io.Discard) },
		func() connect.Decompressor { return &boundedGzip{limit: maxBytes} }))
	if err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	return &Transcoder{vg: vg, patterns: patterns(cfg.services), maxBytes: cfg.maxBytes, restStreams: restStreams(cfg.services)}, nil
}

// ServeHTTP transcodes the request, which must be one for a method of
// the transcoder's services: gRPC, gRPC-Web or Connect to the method's
// path (/{service}/{method}), or REST to a path of its google.api.http
// rule. Other requests get 404 (415 for an unknown content type), and a
// REST request for a streaming method whose binding REST cannot carry
// gets 501 (see the package doc).
func (t *Transcoder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if t == nil || t.vg == nil {
		http.Error(w, "transcode: the Transcoder was not made by New", http.StatusInternalServerError)
		return
	}
	t.serve(w, r, 0)
}

// bodyLimited is the handler of [Transcoder.Routes] for a base route
// with MaxBodyBytes: the transcoder, enforcing that limit itself.
type bodyLimited struct {
	t     *Transcoder
	limit int64
}

func (b *bodyLimited) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.t.serve(w, r, b.limit) }

// serve transcodes a request whose body may be at most limit bytes (0
// for no limit besides the message's).
//
// What the transcoder checks before vanguard sees the request (headers,
// the body's limits, a gzip body) it cannot answer itself in the
// client's protocol, which vanguard alone knows: it notes the refusal in
// the request's call, and the handler vanguard calls in place of the
// upstream answers it as a gRPC status, which vanguard then writes as
// the client's protocol has it.
func (t *Transcoder) serve(w http.ResponseWriter, r *http.Request, limit int64) {
	c, _ := t.calls.Get().(*call)
	if c == nil {
		c = new(call)
	}
	*c = call{t: t, w: w, r: r}
	var ct string
	if v := r.Header["Content-Type"]; len(v) > 0 {
		ct = v[0]
	}
	// The content types vanguard takes for gRPC and gRPC-Web (not
	// "application/grpc-web-text", say, which it serves as REST).
	if !isGRPC(ct) {
		c.checkHeaders(r, ct == "application/grpc-web" || strings.HasPrefix(ct, "application/grpc-web+"))
	}
	if c.refusal == 0 && r.Body != nil && r.Body != http.NoBody {
		c.prepareBody(r, ct, limit)
	}
	t.vg.ServeHTTP((*clientWriter)(c), r)
	// Not deferred: after a panic (ReverseProxy aborts a response that
	// broke off with one), the call is left to the garbage collector.
	*c = call{}
	t.calls.Put(c)
}

// Patterns returns the [http.ServeMux] patterns that cover every request
// the transcoder answers: "/{service}/" for each service (gRPC, gRPC-Web
// and Connect), and the literal prefix of each google.api.http rule's
// path up to its first variable ("/v1/items/" for "/v1/items/{sku}").
// Sorted, without duplicates.
func (t *Transcoder) Patterns() []string {
	if t == nil {
		return nil
	}
	return slices.Clone(t.patterns)
}

// Routes returns one gateway route per pattern of [Transcoder.Patterns],
// each a copy of base with the pattern and the transcoder as its
// Handler: give base the Middleware (auth, rate limits) and the Timeout
// and MaxBodyBytes that all the services' calls share. base's Pattern,
// Upstream and Handler are ignored. Leave Timeout 0 when a service
// streams, or give streaming methods routes of their own.
//
// A positive MaxBodyBytes is enforced by the transcoder rather than the
// gateway (the routes' own MaxBodyBytes is 0, and their Handler a
// transcoder bound to that limit), after the middleware: the gateway
// would answer a body over it with a plain 413, which a Connect or
// gRPC-Web client reads as UNKNOWN, while the transcoder answers
// RESOURCE_EXHAUSTED in the client's protocol (HTTP 429 for REST, as
// for a message over [WithMaxMessageBytes]). As with the gateway's
// limit, the target is not charged for such a body.
func (t *Transcoder) Routes(base gateway.Route) []gateway.Route {
	if t == nil {
		return nil
	}
	h := http.Handler(t)
	if base.MaxBodyBytes > 0 {
		h = &bodyLimited{t: t, limit: base.MaxBodyBytes}
		base.MaxBodyBytes = 0
	}
	out := make([]gateway.Route, 0, len(t.patterns))
	for _, p := range t.patterns {
		r := base
		r.Pattern, r.Upstream, r.Handler = p, "", h
		r.Middleware = slices.Clone(base.Middleware)
		out = append(out, r)
	}
	return out
}

// patterns lists the ServeMux patterns of the services' paths.
func patterns(services []protoreflect.ServiceDescriptor) []string {
	var out []string
	for _, sd := range services {
		out = append(out, "/"+string(sd.FullName())+"/")
		methods := sd.Methods()
		for i := range methods.Len() {
			opts := methods.Get(i).Options()
			if opts == nil || !proto.HasExtension(opts, annotations.E_Http) {
				continue
			}
			rule, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
			for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				if p := rulePrefix(r); p != "" {
					out = append(out, p)
				}
			}
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	// A prefix covered by a shorter one adds nothing.
	kept := out[:0]
	for _, p := range out {
		if len(kept) > 0 && strings.HasSuffix(kept[len(kept)-1], "/") && strings.HasPrefix(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// rulePrefix is the literal part of a rule's path up to its last slash
// before the first variable or wildcard, or the whole path when it has
// none.
func rulePrefix(r *annotations.HttpRule) string {
	_, path := ruleMethodPath(r)
	if !strings.HasPrefix(path, "/") {
		return ""
	}
	if i := strings.IndexAny(path, "{*:"); i >= 0 {
		return path[:strings.LastIndexByte(path[:i], '/')+1]
	}
	return path
}

// ruleMethodPath returns a rule's HTTP method and path template.
func ruleMethodPath(r *annotations.HttpRule) (method, path string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}
