package hexagonal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otelpatterns/patterns/hexagonal"
)

// journal records the lifecycle calls of components, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	j.events = append(j.events, e)
	j.mu.Unlock()
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// component returns a component that records its start and stop in j.
func (j *journal) component(name string) hexagonal.Component {
	return hexagonal.Component{
		Name:  name,
		Start: func(context.Context) error { j.add("start " + name); return nil },
		Stop:  func(context.Context) error { j.add("stop " + name); return nil },
	}
}

// quiet is a logger that discards.
func quiet() hexagonal.LogOption {
	return hexagonal.WithLogger(slog.New(slog.DiscardHandler))
}

// newApp returns an app reading signals from the returned channel.
func newApp(t *testing.T, opts ...hexagonal.Option) (*hexagonal.App, chan os.Signal) {
	t.Helper()
	sigs := make(chan os.Signal, 2)
	app, err := hexagonal.New(append([]hexagonal.Option{hexagonal.WithSignals(sigs), quiet()}, opts...)...)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return app, sigs
}

// ready returns a component that closes ch when started: registered last,
// it tells the test that every component before it started.
func ready(ch chan struct{}) hexagonal.Component {
	return hexagonal.Component{Name: "ready", Start: func(context.Context) error { close(ch); return nil }}
}

// waitReady waits until app has started every component and reports
// ready: ready's channel closes inside the last Start, before the app
// knows that it returned.
func waitReady(t *testing.T, app *hexagonal.App) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !app.Health().Ready(context.Background()).OK {
		if time.Now().After(deadline) {
			t.Fatal("the app did not report ready within 10s of its last start")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunStartsInOrderAndStopsInReverse(t *testing.T) {
	var j journal
	started := make(chan struct{})
	app, _ := newApp(t, hexagonal.WithComponent(j.component("db"), j.component("cache"), j.component("api"), ready(started)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v; want nil", err)
	}
	want := []string{"start db", "start cache", "start api", "stop api", "stop cache", "stop db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("calls = %q; want %q", got, want)
	}
	if rep := app.Health().Ready(context.Background()); rep.OK || rep.Phase != "stopping" {
		t.Errorf("Ready() after Run = %+v; want not OK, phase stopping", rep)
	}
	if err := app.Run(context.Background()); !errors.Is(err, hexagonal.ErrAlreadyRun) {
		t.Errorf("second Run() = %v; want ErrAlreadyRun", err)
	}
}

func TestStartFailureStopsTheStartedOnes(t *testing.T) {
	var j journal
	boom := errors.New("boom")
	failing := hexagonal.Component{
		Name:  "broker",
		Start: func(context.Context) error { j.add("start broker"); return boom },
		Stop:  func(context.Context) error { j.add("stop broker"); return nil },
	}
	app, _ := newApp(t, hexagonal.WithComponent(j.component("db"), j.component("cache"), failing, j.component("api")))
	err := app.Run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `"broker"`) {
		t.Errorf("Run() = %v; want the broker's start error", err)
	}
	want := []string{"start db", "start cache", "start broker", "stop cache", "stop db"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("calls = %q; want %q", got, want)
	}
}

func TestStartFailureJoinsStopErrors(t *testing.T) {
	boom, stuck := errors.New("boom"), errors.New("stuck")
	app, _ := newApp(t, hexagonal.WithComponent(
		hexagonal.Component{Name: "db", Stop: func(context.Context) error { return stuck }},
		hexagonal.Component{Name: "api", Start: func(context.Context) error { return boom }},
	))
	err := app.Run(context.Background())
	if !errors.Is(err, boom) || !errors.Is(err, stuck) {
		t.Fatalf("Run() = %v; want the start error joined with the stop error", err)
	}
	if !strings.HasPrefix(err.Error(), `hexagonal: start "api"`) {
		t.Errorf("Run() = %q; want the start error first", err)
	}
}

func TestStartPanicIsAnError(t *testing.T) {
	var j journal
	app, _ := newApp(t, hexagonal.WithComponent(j.component("db"),
		hexagonal.Component{Name: "api", Start: func(context.Context) error { panic("no config") }}))
	err := app.Run(context.Background())
	var p *hexagonal.PanicError
	if !errors.As(err, &p) || p.Value != "no config" || p.Phase != "start" || len(p.Stack) == 0 {
		t.Fatalf("Run() = %v; want a PanicError of start with its stack", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start db", "stop db"}) {
		t.Errorf("calls = %q; want db started and stopped", got)
	}
}

func TestStartTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		app, _ := newApp(t, hexagonal.WithStartTimeout(3*time.Second), hexagonal.WithComponent(
			hexagonal.Component{Name: "slow", Start: func(context.Context) error { <-release; return nil }}))
		begin := time.Now()
		err := app.Run(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not start within 3s") {
			t.Errorf("Run() = %v; want a start timeout", err)
		}
		if d := time.Since(begin); d != 3*time.Second {
			t.Errorf("Run() took %v; want 3s", d)
		}
		close(release)
	})
}

func TestStopTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		release := make(chan struct{})
		stuck := hexagonal.Component{
			Name:        "stuck",
			Stop:        func(context.Context) error { <-release; return nil }, // ignores its context
			StopTimeout: 2 * time.Second,
		}
		started := make(chan struct{})
		app, sigs := newApp(t, hexagonal.WithStopTimeout(time.Minute),
			hexagonal.WithComponent(j.component("db"), stuck, j.component("api"), ready(started)))
		done := make(chan error, 1)
		go func() { done <- app.Run(context.Background()) }()
		<-started
		begin := time.Now()
		sigs <- syscall.SIGTERM
		err := <-done
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"stuck" did not stop within 2s`) {
			t.Errorf("Run() = %v; want the stuck component's timeout", err)
		}
		if d := time.Since(begin); d != 2*time.Second {
			t.Errorf("shutdown took %v; want 2s, the stuck component's timeout", d)
		}
		want := []string{"start db", "start api", "stop api", "stop db"}
		if got := j.list(); !slices.Equal(got, want) {
			t.Errorf("calls = %q; want %q (db stopped after the stuck one timed out)", got, want)
		}
		close(release)
	})
}

func TestDrainDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		started := make(chan struct{})
		app, sigs := newApp(t, hexagonal.WithDrainDelay(5*time.Second), hexagonal.WithComponent(j.component("api"), ready(started)))
		done := make(chan error, 1)
		go func() { done <- app.Run(context.Background()) }()
		<-started
		synctest.Wait()
		if !app.Health().Ready(context.Background()).OK {
			t.Fatal("not ready after the start")
		}
		sigs <- syscall.SIGTERM
		synctest.Wait()
		if app.Health().Ready(context.Background()).OK {
			t.Error("still ready once the shutdown began")
		}
		time.Sleep(5*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := j.list(); slices.Contains(got, "stop api") {
			t.Errorf("api stopped before the drain delay passed: %q", got)
		}
		time.Sleep(time.Nanosecond)
		if err := <-done; err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if got := j.list(); !slices.Equal(got, []string{"start api", "stop api"}) {
			t.Errorf("calls = %q", got)
		}
	})
}

func TestReadinessDuringStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := hexagonal.NewHealth()
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		var readyWhileStarting atomic.Bool
		app, sigs := newApp(t, hexagonal.WithHealth(h), hexagonal.WithComponent(hexagonal.Component{
			Name: "db",
			Start: func(ctx context.Context) error {
				readyWhileStarting.Store(h.Ready(ctx).OK)
				<-release
				return nil
			},
		}))
		if h.Ready(context.Background()).OK {
			t.Error("ready before Run")
		}
		done := make(chan error, 1)
		go func() { done <- app.Run(context.Background()) }()
		synctest.Wait()
		if rep := h.Ready(context.Background()); rep.OK || rep.Phase != "starting" {
			t.Errorf("Ready() while starting = %+v; want not OK in phase starting", rep)
		}
		if !h.Live(context.Background()).OK {
			t.Error("not live while starting: liveness does not depend on the phase")
		}
		close(release)
		synctest.Wait()
		if !h.Ready(context.Background()).OK {
			t.Error("not ready after the start")
		}
		sigs <- syscall.SIGINT
		if err := <-done; err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if readyWhileStarting.Load() {
			t.Error("ready inside a component's Start")
		}
	})
}

func TestInjectedSignalStops(t *testing.T) {
	var j journal
	started := make(chan struct{})
	app, sigs := newApp(t, hexagonal.WithComponent(j.component("api"), ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	sigs <- os.Interrupt
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v; want nil after a signal", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start api", "stop api"}) {
		t.Errorf("calls = %q", got)
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	release := make(chan struct{})
	stopping := make(chan struct{})
	var code atomic.Int32
	code.Store(-1)
	started := make(chan struct{})
	app, sigs := newApp(t,
		hexagonal.WithExit(func(c int) { code.Store(int32(c)) }),
		hexagonal.WithComponent(hexagonal.Component{
			Name: "stuck",
			Stop: func(context.Context) error { close(stopping); <-release; return nil },
		}, ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	sigs <- syscall.SIGTERM
	<-stopping
	sigs <- syscall.SIGTERM
	err := <-done
	if !errors.Is(err, hexagonal.ErrForcedExit) {
		t.Errorf("Run() = %v; want ErrForcedExit", err)
	}
	if c := code.Load(); c != 1 {
		t.Errorf("exit code = %d; want 1", c)
	}
	close(release)
}

// TestOneSignalWithNotifyContextDoesNotForceExit protects programs that
// end Run's context on SIGINT themselves (signal.NotifyContext): the
// context ends, and the same signal reaches Run, in either order; that
// is one request to stop, and only a second signal forces the exit.
func TestOneSignalWithNotifyContextDoesNotForceExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		stopping := make(chan struct{})
		var exited atomic.Bool
		started := make(chan struct{})
		app, sigs := newApp(t,
			hexagonal.WithExit(func(int) { exited.Store(true) }),
			hexagonal.WithComponent(hexagonal.Component{
				Name: "stuck",
				Stop: func(context.Context) error { close(stopping); <-release; return nil },
			}, ready(started)))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx) }()
		<-started
		cancel()
		<-stopping
		sigs <- syscall.SIGINT // the signal that ended the context, seen late
		synctest.Wait()
		if exited.Load() {
			t.Fatal("one signal forced the exit")
		}
		select {
		case err := <-done:
			t.Fatalf("Run() = %v after one signal; want it still stopping", err)
		default:
		}
		sigs <- syscall.SIGINT
		if err := <-done; !errors.Is(err, hexagonal.ErrForcedExit) || !exited.Load() {
			t.Errorf("Run() = %v, exited %v; want ErrForcedExit after the second signal", err, exited.Load())
		}
		close(release)
	})
}

func TestRunFailureShutsDown(t *testing.T) {
	var j journal
	lost := errors.New("connection lost")
	consumer := hexagonal.Component{
		Name: "consumer",
		Run:  func(context.Context) error { return lost },
		Stop: func(context.Context) error { j.add("stop consumer"); return nil },
	}
	app, _ := newApp(t, hexagonal.WithComponent(j.component("db"), consumer))
	err := app.Run(context.Background())
	if !errors.Is(err, lost) || !strings.Contains(err.Error(), `"consumer" failed`) {
		t.Errorf("Run() = %v; want the consumer's error", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start db", "stop consumer", "stop db"}) {
		t.Errorf("calls = %q", got)
	}
}

func TestRunContextCanceledAtStop(t *testing.T) {
	var j journal
	started := make(chan struct{})
	consumer := hexagonal.Component{
		Name: "consumer",
		Run: func(ctx context.Context) error {
			<-ctx.Done()
			j.add("consumer done")
			return ctx.Err() // a cancellation at stop is no failure
		},
	}
	app, sigs := newApp(t, hexagonal.WithComponent(j.component("db"), consumer, ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v; want nil", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start db", "consumer done", "stop db"}) {
		t.Errorf("calls = %q", got)
	}
}

func TestNewReportsEveryBadOption(t *testing.T) {
	_, err := hexagonal.New(
		hexagonal.WithDrainDelay(-1),
		hexagonal.WithStartTimeout(0),
		nil,
		hexagonal.WithStopTimeout(-time.Second),
		hexagonal.WithExit(nil),
		hexagonal.WithComponent(
			hexagonal.Component{Name: "a", Start: func(context.Context) error { return nil }},
			hexagonal.Component{Name: "a", Start: func(context.Context) error { return nil }},
			hexagonal.Component{Name: "", Stop: func(context.Context) error { return nil }},
			hexagonal.Component{Name: "idle"},
			hexagonal.Component{Name: "neg", Stop: func(context.Context) error { return nil }, StopTimeout: -1},
			hexagonal.HTTPServer("nil-server", nil),
			hexagonal.HTTPServerListener("nil-listener", &http.Server{}, nil),
		),
	)
	if err == nil {
		t.Fatal("New() = nil error")
	}
	for _, want := range []string{"WithDrainDelay", "WithStartTimeout", "opts[2] is nil", "WithStopTimeout", "WithExit",
		`("a"): the name is taken`, "component 2 has no name", `("idle"): Start, Run and Stop are all nil`,
		`("neg"): StopTimeout`, `HTTPServer("nil-server")`, `HTTPServerListener("nil-listener")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New() = %v; want it to mention %s", err, want)
		}
	}
}

func TestPhasesAreLogged(t *testing.T) {
	var buf syncBuffer
	started := make(chan struct{})
	var j journal
	app, sigs := newApp(t, hexagonal.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))),
		hexagonal.WithComponent(j.component("db"), ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	// The log says "started; ready" once the last Start has returned,
	// after it closed started: a signal in between interrupts the start.
	waitReady(t, app)
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"hexagonal: starting", "component started", "component=db", "started; ready",
		"signal received", "signal=terminated", "shutting down", "component stopped", "hexagonal: stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// closeNotifier is a listener that tells when it is closed: when the
// server stopped accepting.
type closeNotifier struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeNotifier) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// TestInFlightRequestsFinishDuringShutdown puts a real server under load,
// shuts the app down while requests are in flight, and checks that every
// one of them completes while new connections are refused.
func TestInFlightRequestsFinishDuringShutdown(t *testing.T) {
	const inFlight = 32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cn := &closeNotifier{Listener: ln, closed: make(chan struct{})}
	release := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(inFlight)
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release
		served.Add(1)
		fmt.Fprint(w, "done")
	})
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "fast") })
	srv := &http.Server{Handler: mux}
	started := make(chan struct{})
	app, sigs := newApp(t, hexagonal.WithComponent(hexagonal.HTTPServerListener("api", srv, cn), ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started

	url := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inFlight}}
	defer client.CloseIdleConnections()
	// Load: quick requests on kept-alive connections while the slow ones
	// pile up.
	loadDone := make(chan struct{})
	var load sync.WaitGroup
	for range 4 {
		load.Go(func() {
			for {
				select {
				case <-loadDone:
					return
				default:
				}
				resp, err := client.Get(url + "/fast")
				if err != nil {
					return // refused once the server stopped
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	results := make(chan error, inFlight)
	for range inFlight {
		go func() {
			resp, err := client.Get(url + "/slow")
			if err != nil {
				results <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err == nil && (resp.StatusCode != http.StatusOK || string(body) != "done") {
				err = fmt.Errorf("status %d, body %q", resp.StatusCode, body)
			}
			results <- err
		}()
	}
	arrived.Wait()
	sigs <- syscall.SIGTERM
	<-cn.closed
	close(loadDone)
	load.Wait()
	// The server no longer accepts: a new connection is refused.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("a new connection was accepted during the shutdown")
	}
	if app.Health().Ready(context.Background()).OK {
		t.Error("ready during the shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Run() returned %v with requests in flight", err)
	default:
	}
	close(release)
	for range inFlight {
		if err := <-results; err != nil {
			t.Errorf("an in-flight request failed: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if n := served.Load(); n != inFlight {
		t.Errorf("served %d slow requests; want %d", n, inFlight)
	}
}

func TestHTTPServerListensAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The address is in use: the start fails, and Run says so.
	app, _ := newApp(t, hexagonal.WithComponent(hexagonal.HTTPServer("api", &http.Server{Addr: ln.Addr().String()})))
	err = app.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `start "api"`) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Run() = %v; want the listen error", err)
	}
}

func TestHTTPServerServes(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	started := make(chan struct{})
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi") })}
	app, sigs := newApp(t, hexagonal.WithComponent(hexagonal.HTTPServer("api", srv), ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Get("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if string(body) != "hi" {
		t.Errorf("body = %q", body)
	}
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRunEndingDuringStartShutsDown protects the start-up from missing a
// component that finished while later ones started: the app shuts down
// instead of running without it.
func TestRunEndingDuringStartShutsDown(t *testing.T) {
	var j journal
	finished := make(chan struct{})
	job := hexagonal.Component{
		Name: "job",
		Run:  func(context.Context) error { close(finished); return nil },
		Stop: func(context.Context) error { j.add("stop job"); return nil },
	}
	waits := hexagonal.Component{
		Name:  "waits",
		Start: func(context.Context) error { <-finished; j.add("start waits"); return nil },
		Stop:  func(context.Context) error { j.add("stop waits"); return nil },
	}
	app, _ := newApp(t, hexagonal.WithComponent(job, waits, j.component("api")))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a component finished during the start")
	}
	// waits and api may or may not have started, depending on when the
	// job's end was seen; what started stopped.
	got := j.list()
	if !slices.Contains(got, "stop job") {
		t.Errorf("calls = %q; want job stopped", got)
	}
	for _, name := range []string{"waits", "api"} {
		if slices.Contains(got, "start "+name) != slices.Contains(got, "stop "+name) {
			t.Errorf("calls = %q; %s started without being stopped, or the reverse", got, name)
		}
	}
}

func TestRunPanicShutsDown(t *testing.T) {
	var j journal
	app, _ := newApp(t, hexagonal.WithComponent(j.component("db"), hexagonal.Component{
		Name: "consumer",
		Run:  func(context.Context) error { panic("nil message") },
	}))
	err := app.Run(context.Background())
	var p *hexagonal.PanicError
	if !errors.As(err, &p) || p.Phase != "run" || p.Component != "consumer" {
		t.Fatalf("Run() = %v; want the consumer's panic", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"start db", "stop db"}) {
		t.Errorf("calls = %q", got)
	}
}

// probeOn is a slog handler that calls f at each record whose message is
// msg, before the logging call returns: f sees the app as it is when it
// logs.
type probeOn struct {
	msg string
	f   func()
}

func (h probeOn) Enabled(context.Context, slog.Level) bool { return true }
func (h probeOn) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.f()
	}
	return nil
}
func (h probeOn) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h probeOn) WithGroup(string) slog.Handler      { return h }

// TestDrainClosesKeptAliveConnections: during the drain delay the server
// still answers, but closes each connection after its response, so that
// clients holding kept-alive connections move to another instance.
func TestDrainClosesKeptAliveConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	draining := make(chan struct{})
	started := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })}
	// A drain delay longer than the test: it ends with a forced exit,
	// and the test closes the server.
	app, sigs := newApp(t, hexagonal.WithDrainDelay(time.Hour), hexagonal.WithExit(func(int) {}),
		hexagonal.WithLogger(slog.New(probeOn{msg: "hexagonal: draining", f: sync.OnceFunc(func() { close(draining) })})),
		hexagonal.WithComponent(hexagonal.HTTPServerListener("api", srv, ln), ready(started)))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func() *http.Response {
		t.Helper()
		resp, err := client.Get("http://" + ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get(); resp.Close {
		t.Error("a response closes its connection before the shutdown")
	}
	sigs <- syscall.SIGTERM
	<-draining
	if resp := get(); !resp.Close || resp.StatusCode != http.StatusOK {
		t.Errorf("a response during the drain: status %d, Close %v; want 200 closing its connection", resp.StatusCode, resp.Close)
	}
	sigs <- syscall.SIGTERM
	if err := <-done; !errors.Is(err, hexagonal.ErrForcedExit) {
		t.Errorf("Run() = %v; want ErrForcedExit", err)
	}
	_ = srv.Close()
}

// A closed signal channel (a test's way of saying "stop") asks for one
// graceful shutdown; it used to crash the watcher on the nil signal it
// reads, and its next read forced the exit.
func TestClosedSignalChannelShutsDown(t *testing.T) {
	var j journal
	started := make(chan struct{})
	var exits atomic.Int32
	app, sigs := newApp(t, hexagonal.WithComponent(j.component("db"), ready(started)),
		hexagonal.WithExit(func(int) { exits.Add(1) }))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	close(sigs)
	if err := <-done; err != nil {
		t.Errorf("Run() = %v; want nil", err)
	}
	if n := exits.Load(); n != 0 {
		t.Errorf("exit called %d times; want 0", n)
	}
	if got, want := j.list(), []string{"start db", "stop db"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v; want %v", got, want)
	}
}

// TestStartThatFinishesDuringShutdownIsStopped: a signal that comes
// while a component's Start runs ends Start's context, and the app waits
// for Start to return; a Start that returns nil then (it had opened its
// pool anyway) started its component, which the shutdown must stop. The
// app took it for one that never started, and left it open.
func TestStartThatFinishesDuringShutdownIsStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		pool := hexagonal.Component{
			Name: "pool",
			Start: func(ctx context.Context) error {
				<-ctx.Done()
				j.add("start pool")
				return nil
			},
			Stop: func(context.Context) error { j.add("stop pool"); return nil },
		}
		app, sigs := newApp(t, hexagonal.WithComponent(j.component("db"), pool))
		done := make(chan error, 1)
		go func() { done <- app.Run(context.Background()) }()
		synctest.Wait() // pool's Start is waiting on its context
		sigs <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
		if got, want := j.list(), []string{"start db", "start pool", "stop pool", "stop db"}; !slices.Equal(got, want) {
			t.Errorf("journal = %v; want %v", got, want)
		}
	})
}

// TestShutdownWaitsForStartUpToItsTimeout: a Start that ignores its
// context holds a shutdown that comes during it up to the start timeout,
// not longer, and is then left behind.
func TestShutdownWaitsForStartUpToItsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		app, sigs := newApp(t, hexagonal.WithStartTimeout(3*time.Second), hexagonal.WithComponent(
			hexagonal.Component{Name: "stuck", Start: func(context.Context) error { <-release; return nil }}))
		done := make(chan error, 1)
		begin := time.Now()
		go func() { done <- app.Run(context.Background()) }()
		time.Sleep(time.Second)
		sigs <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("Run() = %v; want nil: the app was asked to stop", err)
		}
		if d := time.Since(begin); d != 3*time.Second {
			t.Errorf("Run() took %v; want 3s, the start timeout", d)
		}
		close(release)
	})
}

// TestSecondSignalEndsTheWaitForStart: a forced exit does not wait for a
// Start out to its timeout, and Run says the exit was forced.
func TestSecondSignalEndsTheWaitForStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var code atomic.Int32
		app, sigs := newApp(t, hexagonal.WithStartTimeout(3*time.Second),
			hexagonal.WithExit(func(c int) { code.Store(int32(c)) }),
			hexagonal.WithComponent(hexagonal.Component{Name: "stuck", Start: func(context.Context) error { <-release; return nil }}))
		done := make(chan error, 1)
		begin := time.Now()
		go func() { done <- app.Run(context.Background()) }()
		time.Sleep(time.Second)
		sigs <- syscall.SIGTERM
		synctest.Wait()
		sigs <- syscall.SIGTERM
		if err := <-done; !errors.Is(err, hexagonal.ErrForcedExit) {
			t.Errorf("Run() = %v; want ErrForcedExit", err)
		}
		if d := time.Since(begin); d != time.Second {
			t.Errorf("Run() took %v; want 1s: the second signal ends the wait", d)
		}
		if c := code.Load(); c != 1 {
			t.Errorf("exit code %d; want 1", c)
		}
		close(release)
	})
}

// TestRunDeadlineDuringStartThatFinishesIsStopped: Run's context
// reaching its deadline during a Start is a shutdown too (not the start
// timeout): the app waits for the Start, and stops a component that
// started.
func TestRunDeadlineDuringStartThatFinishesIsStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		pool := hexagonal.Component{
			Name:  "pool",
			Start: func(ctx context.Context) error { <-ctx.Done(); j.add("start pool"); return nil },
			Stop:  func(context.Context) error { j.add("stop pool"); return nil },
		}
		app, _ := newApp(t, hexagonal.WithComponent(j.component("db"), pool))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := app.Run(ctx); err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
		synctest.Wait()
		if got, want := j.list(), []string{"start db", "start pool", "stop pool", "stop db"}; !slices.Equal(got, want) {
			t.Errorf("journal = %v; want %v", got, want)
		}
	})
}

// TestNoReadyAfterSignalDuringStart: a last Start that returns nil
// during the shutdown does not make the app report ready.
func TestNoReadyAfterSignalDuringStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		pool := hexagonal.Component{
			Name:  "pool",
			Start: func(ctx context.Context) error { <-ctx.Done(); return nil },
			Stop:  func(context.Context) error { return nil },
		}
		app, sigs := newApp(t, hexagonal.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))), hexagonal.WithComponent(pool))
		done := make(chan error, 1)
		go func() { done <- app.Run(context.Background()) }()
		synctest.Wait()
		sigs <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		if log := buf.String(); strings.Contains(log, "started; ready") {
			t.Errorf("the app reported ready after the signal:\n%s", log)
		}
	})
}

// Run's context reaching its deadline during a start is a shutdown
// asked for by the caller, as it is once the app runs: not a start
// failure reported as a start timeout.
func TestRunDeadlineDuringStartIsNoFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		slow := hexagonal.Component{Name: "slow", Start: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}
		app, _ := newApp(t, hexagonal.WithComponent(j.component("db"), slow))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := app.Run(ctx); err != nil {
			t.Errorf("Run() = %v; want nil, as when the deadline passes after the start", err)
		}
		if got, want := j.list(), []string{"start db", "stop db"}; !slices.Equal(got, want) {
			t.Errorf("journal = %v; want %v", got, want)
		}
	})
}

// TestNoReadyAfterRunFailedDuringStart: a component's Run that fails
// while the last component starts makes the app shut down without
// turning ready, as a signal then does
// (TestNoReadyAfterSignalDuringStart): the app never logs "started;
// ready" nor reports ready, though every Start succeeded.
func TestNoReadyAfterRunFailedDuringStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			app      *hexagonal.App
			sawReady atomic.Bool
		)
		handler := probeOn{msg: "hexagonal: started; ready", f: sync.OnceFunc(func() {
			sawReady.Store(app.Health().Ready(context.Background()).OK)
		})}
		lastStarting, failed := make(chan struct{}), make(chan struct{})
		consumer := hexagonal.Component{
			Name: "consumer",
			Run: func(context.Context) error {
				<-lastStarting // fails once the last Start has begun
				close(failed)
				return errors.New("broker connection lost")
			},
		}
		last := hexagonal.Component{
			Name: "last",
			Start: func(context.Context) error {
				close(lastStarting)
				<-failed
				time.Sleep(time.Millisecond) // the consumer's Run has returned and reported
				return nil
			},
		}
		app, _ = newApp(t, hexagonal.WithLogger(slog.New(handler)), hexagonal.WithComponent(consumer, last))
		if err := app.Run(context.Background()); err == nil {
			t.Fatal("Run() = nil; want the consumer's failure")
		}
		if sawReady.Load() {
			t.Error("the app reported ready after a component's Run had failed during the start")
		}
	})
}
