package transcode

import (
	"encoding/json"
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A streaming method's REST binding (google.api.http) is one that REST
// can carry only when the streamed side is a google.api.HttpBody (a
// download or an upload of raw bytes): vanguard serves no other, and
// answers a REST request for one 415 Unsupported Media Type, which
// tells the client to change its Content-Type, though no content type
// would do. The transcoder answers 501 Not Implemented instead, with a
// google.rpc.Status of UNIMPLEMENTED saying which protocols serve the
// method. It looks for such a binding only when vanguard answers 415
// before calling the upstream, so the calls it serves pay nothing for
// it, and it matches the request the way vanguard routes it, by the
// binding's HTTP method and path template.

// restStream is a streaming method's REST binding that REST cannot
// carry: its HTTP method, its path template as segments ("*" for one
// segment, "**" for the rest, any other a literal) and verb, and the
// body of the transcoder's 501.
type restStream struct {
	method string
	segs   []string
	verb   string
	answer []byte
}

// restStreams finds the REST bindings of the services' streaming
// methods that REST cannot carry.
func restStreams(services []protoreflect.ServiceDescriptor) []restStream {
	var out []restStream
	for _, sd := range services {
		methods := sd.Methods()
		for i := range methods.Len() {
			md := methods.Get(i)
			opts := md.Options()
			if !md.IsStreamingServer() && !md.IsStreamingClient() || opts == nil || !proto.HasExtension(opts, annotations.E_Http) {
				continue
			}
			rule, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
			for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				if why := unservableREST(md, r); why != "" {
					if s, ok := parseRESTStream(r, string(md.FullName())+" "+why); ok {
						out = append(out, s)
					}
				}
			}
		}
	}
	return out
}

// unservableREST says why REST cannot carry method md bound by rule r,
// or returns "" when it can.
func unservableREST(md protoreflect.MethodDescriptor, r *annotations.HttpRule) string {
	const how = ": call it with gRPC, gRPC-Web or Connect"
	switch {
	case md.IsStreamingServer() && md.IsStreamingClient():
		return "streams both ways, which REST cannot carry" + how
	case md.IsStreamingServer() && !isHTTPBody(md.Output(), r.GetResponseBody()):
		return "streams its response, which REST carries only as google.api.HttpBody" + how
	case md.IsStreamingClient() && !isHTTPBody(md.Input(), r.GetBody()):
		return "streams its request, which REST carries only as google.api.HttpBody" + how
	}
	return ""
}

// isHTTPBody reports whether the field of msg at path (dotted; "" or
// "*" for msg itself) is a single google.api.HttpBody.
func isHTTPBody(msg protoreflect.MessageDescriptor, path string) bool {
	if path != "" && path != "*" {
		for name := range strings.SplitSeq(path, ".") {
			if msg == nil {
				return false
			}
			fd := msg.Fields().ByName(protoreflect.Name(name))
			if fd == nil || fd.IsList() || fd.IsMap() {
				return false
			}
			msg = fd.Message()
		}
	}
	return msg != nil && msg.FullName() == "google.api.HttpBody"
}

// parseRESTStream makes the restStream of rule r, whose 501 says msg.
func parseRESTStream(r *annotations.HttpRule, msg string) (restStream, bool) {
	method, path := ruleMethodPath(r)
	segs, verb, ok := parseTemplate(path)
	if method == "" || !ok {
		return restStream{}, false
	}
	body, err := json.Marshal(struct {
		Code    int        `json:"code"`
		Message string     `json:"message"`
		Details []struct{} `json:"details"`
	}{12, msg, []struct{}{}}) // google.rpc.Status of UNIMPLEMENTED, as vanguard writes one
	if err != nil {
		return restStream{}, false
	}
	return restStream{method: method, segs: segs, verb: verb, answer: body}, true
}

// parseTemplate reads a google.api.http path template
// ("/v1/{name=shelves/*}/items/{sku}:watch") as segments, each variable
// replaced by the segments it matches ("*" when it gives none), and its
// verb.
func parseTemplate(path string) (segs []string, verb string, ok bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, "", false
	}
	for i := 1; ; {
		if i < len(path) && path[i] == '{' {
			end := strings.IndexByte(path[i:], '}')
			if end < 0 {
				return nil, "", false
			}
			if _, sub, ok := strings.Cut(path[i+1:i+end], "="); ok {
				segs = append(segs, strings.Split(sub, "/")...)
			} else {
				segs = append(segs, "*")
			}
			i += end + 1
		} else {
			j := i
			for j < len(path) && path[j] != '/' && path[j] != ':' {
				j++
			}
			segs = append(segs, path[i:j])
			i = j
		}
		switch {
		case i >= len(path):
			return segs, "", true
		case path[i] == '/':
			i++
		case path[i] == ':':
			return segs, path[i+1:], true
		default:
			return nil, "", false
		}
	}
}

// matches reports whether r is a request for the binding.
func (s *restStream) matches(r *http.Request) bool {
	if r.Method != s.method {
		return false
	}
	p := r.URL.EscapedPath()
	if s.verb != "" {
		rest, ok := strings.CutSuffix(p, ":"+s.verb)
		if !ok {
			return false
		}
		p = rest
	}
	if !strings.HasPrefix(p, "/") {
		return false
	}
	parts := strings.Split(p[1:], "/")
	for i, seg := range s.segs {
		switch {
		case seg == "**":
			return true
		case i >= len(parts), seg != "*" && seg != parts[i]:
			return false
		}
	}
	return len(parts) == len(s.segs)
}

// unservable returns the streaming binding that REST cannot carry that
// r is a request for, or nil.
func (t *Transcoder) unservable(r *http.Request) *restStream {
	for i := range t.restStreams {
		if t.restStreams[i].matches(r) {
			return &t.restStreams[i]
		}
	}
	return nil
}
