package hexagonal

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// ProblemContentType is the media type of a problem details document
// (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem is a problem details document (RFC 9457): how an HTTP API tells
// its client what went wrong, in a form both people and programs read.
// A *Problem is also an error, so an adapter can return one to choose
// the answer itself.
type Problem struct {
	// Type is a URI reference naming the problem's type; empty means
	// "about:blank", whose title is the status's text.
	Type string `json:"type,omitempty"`
	// Title is a short summary of the problem type.
	Title string `json:"title,omitempty"`
	// Status is the HTTP status code.
	Status int `json:"status,omitempty"`
	// Detail explains this occurrence, for a person.
	Detail string `json:"detail,omitempty"`
	// Instance is a URI reference naming this occurrence.
	Instance string `json:"instance,omitempty"`
	// Extensions are more members of the document, such as a
	// machine-readable "code"; those named as the members above are
	// left out.
	Extensions map[string]any `json:"-"`
}

// Error returns the problem's title and detail.
func (p *Problem) Error() string {
	s := p.Title
	if s == "" {
		s = http.StatusText(p.Status)
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// MarshalJSON writes the problem with its extensions as members of their
// own.
func (p *Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	if len(p.Extensions) == 0 {
		return json.Marshal((*plain)(p))
	}
	m := make(map[string]any, len(p.Extensions)+5)
	for k, v := range p.Extensions {
		m[k] = v
	}
	for k, v := range map[string]any{"type": p.Type, "title": p.Title, "detail": p.Detail, "instance": p.Instance} {
		delete(m, k)
		if v != "" {
			m[k] = v
		}
	}
	delete(m, "status")
	if p.Status != 0 {
		m["status"] = p.Status
	}
	return json.Marshal(m)
}

// StatusOf returns the HTTP status that err answers: that of a *Problem
// in its chain (500 if not 4xx or 5xx), else that of its [DomainError]'s
// kind (see the Kind constants; an unknown kind answers 422 Unprocessable
// Content), else 500.
func StatusOf(err error) int {
	if p := problemIn(err); p != nil {
		return validStatus(p.Status)
	}
	if kind, ok := DomainKind(err); ok {
		return kindStatus(kind)
	}
	return http.StatusInternalServerError
}

func kindStatus(kind string) int {
	switch kind {
	case KindInvalid:
		return http.StatusBadRequest
	case KindUnauthorized:
		return http.StatusUnauthorized
	case KindForbidden:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindConflict:
		return http.StatusConflict
	case KindRejected:
		return http.StatusUnprocessableEntity
	case KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnprocessableEntity
}

// ProblemOf returns the problem that err answers: a copy of the *Problem
// in its chain (with 500 for a status that is not 4xx or 5xx); for a
// [DomainError] in the chain, its kind's status and title, as the detail
// the message of the domain error with the errors that wrap it (as
// fmt.Errorf("order %s: %w", id, err) does), but not of those joined to
// it (errors.Join, fmt.Errorf with several %w), and the kind as the
// "kind" extension;
// for any other error, 500 with no detail, since its message may tell
// the client about the service's insides.
func ProblemOf(err error) *Problem {
	if p := problemIn(err); p != nil {
		c := *p
		c.Status = validStatus(c.Status)
		return &c
	}
	if d, msg, ok := domainOf(err); ok {
		kind := d.DomainKind()
		status := kindStatus(kind)
		return &Problem{
			Title:  http.StatusText(status),
			Status: status,
			// Not err's message, which holds the text of the errors
			// joined to the domain error, such as a database's.
			Detail:     msg.Error(),
			Extensions: map[string]any{"kind": kind},
		}
	}
	return &Problem{Title: http.StatusText(http.StatusInternalServerError), Status: http.StatusInternalServerError}
}

// problemIn returns the first *Problem in err's chain, or nil. A nil
// one (a typed nil, such as an adapter's func() *Problem returns for no
// problem) is none: [errors.As] finds it all the same.
func problemIn(err error) *Problem {
	var p *Problem
	errors.As(err, &p)
	return p
}

// WriteProblem answers err as an application/problem+json document
// ([ProblemOf]). Call it before writing anything else to w.
func WriteProblem(w http.ResponseWriter, err error) {
	p := ProblemOf(err)
	body, merr := json.Marshal(p)
	if merr != nil {
		// An extension that does not marshal: answer without them.
		body, _ = json.Marshal(&Problem{Type: p.Type, Title: p.Title, Status: p.Status, Detail: p.Detail, Instance: p.Instance})
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// validStatus returns status when it is an error status, 4xx or 5xx,
// and 500 otherwise (0 included): net/http sends a 1xx as an
// informational response followed by a 200, and writes no body after a
// 204 or a 304.
func validStatus(status int) int {
	if status < 400 || status > 599 {
		return http.StatusInternalServerError
	}
	return status
}
