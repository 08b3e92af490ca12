package hexagonal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Component is a part of an [App] with a lifecycle: a driving adapter (an
// HTTP server, a message consumer) or a driven one (a database pool, a
// publisher). Every function may be nil, but not all three.
//
// The app calls Start, in registration order; then, if Run is set, runs
// it on a goroutine of its own; at shutdown, in reverse order, it cancels
// Run's context, calls Stop and waits for Run to return, all within the
// component's stop timeout.
type Component struct {
	// Name names the component in logs, spans and errors; it must be
	// unique within the app.
	Name string
	// Start prepares the component (opens a pool, binds a listener) and
	// returns; its context ends at the app's start timeout or when the
	// app is asked to stop. An error stops the app's start: the components
	// started before are stopped, and Run returns the error. When the app
	// is asked to stop during Start, it waits for Start to return, up to
	// the start timeout: a Start that returns nil then is stopped with the
	// others, and its error, if any, is taken for the interruption.
	Start func(ctx context.Context) error
	// Run, if set, does the component's work until its context is
	// canceled or Stop makes it return. If it returns while the app runs,
	// the app shuts down, and a non-nil error is Run's result.
	Run func(ctx context.Context) error
	// Stop releases the component, within the context's deadline.
	Stop func(ctx context.Context) error
	// StopTimeout bounds the component's stop; 0 means the app's
	// [WithStopTimeout].
	StopTimeout time.Duration

	err   error  // a configuration error, reported by New
	drain func() // called when the shutdown begins, before the drain delay
}

// HTTPServer returns srv as a driving adapter of an app: its Start
// listens on srv.Addr (":http" when empty), so that an address in use
// fails the start; it then serves in the background (with TLS when
// srv.TLSConfig is set, which must then hold the certificates). When the
// app's shutdown begins, the server turns keep-alives off, so that
// during the drain delay each response closes its connection; its Stop
// is [http.Server.Shutdown], which stops accepting connections and waits
// for the requests in flight, and closes the remaining connections if the
// stop timeout passes first. Neither waits for nor closes hijacked
// connections (WebSockets, CONNECT tunnels): their handlers go on after
// the app has stopped unless srv.RegisterOnShutdown tells them to end.
func HTTPServer(name string, srv *http.Server) Component {
	return httpServer(name, srv, nil)
}

// HTTPServerListener is [HTTPServer] serving on ln, which the server
// closes when it stops.
func HTTPServerListener(name string, srv *http.Server, ln net.Listener) Component {
	if ln == nil {
		return Component{Name: name, err: fmt.Errorf("HTTPServerListener(%q): the listener is nil", name)}
	}
	return httpServer(name, srv, ln)
}

func httpServer(name string, srv *http.Server, ln net.Listener) Component {
	if srv == nil {
		return Component{Name: name, err: fmt.Errorf("HTTPServer(%q): the server is nil", name)}
	}
	s := &serverComponent{srv: srv, ln: ln}
	// Once the shutdown begins, each response closes its connection, so
	// that clients and load balancers holding kept-alive connections
	// reconnect, to another instance, during the drain delay.
	drain := func() { srv.SetKeepAlivesEnabled(false) }
	return Component{Name: name, Start: s.start, Run: s.run, Stop: s.stop, drain: drain}
}

type serverComponent struct {
	srv *http.Server
	mu  sync.Mutex
	ln  net.Listener
}

func (s *serverComponent) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	addr := s.srv.Addr
	if addr == "" {
		addr = ":http"
		if s.srv.TLSConfig != nil {
			addr = ":https"
		}
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

func (s *serverComponent) run(context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	var err error
	if s.srv.TLSConfig != nil {
		err = s.srv.ServeTLS(ln, "", "")
	} else {
		err = s.srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *serverComponent) stop(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		// The requests still in flight are cut off rather than left
		// running after the app has returned.
		_ = s.srv.Close()
		return err
	}
	return nil
}
