package rediscache_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// newClient returns a client of the Redis at addr, configured as the
// package documentation advises, closed when the test ends.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sharedClient returns a client of the Redis at PATTERNS_REDIS_ADDR, or
// skips the test.
func sharedClient(t testing.TB) *redis.Client {
	t.Helper()
	return newClient(t, testenv.RedisAddr(t))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_/-]+`)

// namespace returns a key prefix and a channel private to this test run.
func namespace(t testing.TB) (prefix, channel string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	base := "rediscache-test:" + unsafeChars.ReplaceAllString(t.Name(), "_") + ":" + hex.EncodeToString(b[:])
	return base + ":", base + ":invalidate"
}

// deleteKeys deletes every key starting with prefix (which has no glob
// characters), with SCAN and DEL.
func deleteKeys(t testing.TB, client redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := client.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			t.Logf("cleaning up %s*: %v", prefix, err) // the server may be gone
			return
		}
		if len(keys) > 0 {
			if err := client.Del(ctx, keys...).Err(); err != nil {
				t.Logf("cleaning up %s*: %v", prefix, err)
				return
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// newStore returns a store in a namespace private to the test, whose keys
// are deleted when the test ends.
func newStore(t testing.TB, client redis.UniversalClient, opts ...rediscache.Option) *rediscache.Store {
	t.Helper()
	prefix, channel := namespace(t)
	t.Cleanup(func() { deleteKeys(t, client, prefix) })
	return newStoreIn(t, client, prefix, channel, opts...)
}

// newStoreIn returns a store with the given prefix and channel.
func newStoreIn(t testing.TB, client redis.UniversalClient, prefix, channel string, opts ...rediscache.Option) *rediscache.Store {
	t.Helper()
	s, err := rediscache.New(client, append([]rediscache.Option{rediscache.WithPrefix(prefix), rediscache.WithChannel(channel)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() }) // stops the repair of failed writes
	return s
}

// newServerStore returns a store of a test's own server, which is
// discarded with its keys when the test ends.
func newServerStore(t testing.TB, client redis.UniversalClient, opts ...rediscache.Option) *rediscache.Store {
	t.Helper()
	prefix, channel := namespace(t)
	return newStoreIn(t, client, prefix, channel, opts...)
}

// server is a redis-server of the test's own, which the test may kill,
// freeze and start again on the same port.
type server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

// startServer starts a redis-server on a free port, or skips the test when
// there is no redis-server on the PATH (and integration tests are not
// required). It is killed when the test ends.
func startServer(t testing.TB) *server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "this test runs a redis-server of its own to kill it, and there is none on the PATH: " + err.Error()
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &server{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	t.Cleanup(s.kill) // after TempDir's cleanup was registered, so it runs before it
	s.start()
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// start starts the server and waits until it answers PING.
func (s *server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Nil(s.t, s.cmd, "the server is already running")
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", s.dir, "--loglevel", "warning")
	s.out = new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	require.NoError(s.t, cmd.Start())
	s.cmd = cmd
	deadline := time.Now().Add(5 * time.Second)
	for !ping(s.addr()) {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %d did not answer PING within 5s; its output:\n%s", s.port, s.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill kills the server with SIGKILL, as a crash would, and waits for it
// to exit. Killing a stopped server does nothing.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// freeze stops the server with SIGSTOP: connections stay open but nothing
// answers, as in a network partition. It thaws when the test ends.
func (s *server) freeze() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.cmd.Process
	if !canFreeze {
		s.t.Skip("freezing a process needs SIGSTOP, which this platform lacks")
	}
	require.NoError(s.t, p.Signal(stopSignal))
	s.t.Cleanup(func() { _ = p.Signal(contSignal) })
}

func (s *server) thaw() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(s.t, s.cmd.Process.Signal(contSignal))
}

// ping reports whether a Redis server answers PING at addr.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// within runs f and fails the test if it took longer than d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if took := time.Since(start); took > d {
		t.Errorf("%s took %v; want at most %v", what, took, d)
	}
}

// events collects the calls of a subscription's handler and reconnected
// callback.
type events struct {
	keys        chan string
	reconnected chan struct{}
}

func newEvents() *events {
	return &events{keys: make(chan string, 1000), reconnected: make(chan struct{}, 10)}
}

func (e *events) handle(source, key string) { e.keys <- source + " " + key }
func (e *events) reconnect()                { e.reconnected <- struct{}{} }

// next waits for the next key announced, skipping the store's own
// announcements of the keys it repaired.
func (e *events) next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case k := <-e.keys:
			if strings.HasPrefix(k, "rediscache-repair-") {
				continue
			}
			return k
		case <-deadline:
			t.Fatalf("no announcement within %v", timeout)
			return ""
		}
	}
}

// nextRaw waits for the next announcement, the store's own included.
func (e *events) nextRaw(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case k := <-e.keys:
		return k
	case <-time.After(timeout):
		t.Fatalf("no announcement within %v", timeout)
		return ""
	}
}

func (e *events) waitReconnected(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-e.reconnected:
	case <-time.After(timeout):
		t.Fatalf("reconnected was not called within %v", timeout)
	}
}

func subscribe(t testing.TB, s *rediscache.Store, e *events) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop, err := s.Subscribe(ctx, e.handle, e.reconnect)
	require.NoError(t, err)
	t.Cleanup(stop)
	return stop
}

// ctxWithin returns a context that ends after d, or with the test.
func ctxWithin(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func itoa(i int) string          { return strconv.Itoa(i) }
func atoi(s string) (int, error) { return strconv.Atoi(s) }
