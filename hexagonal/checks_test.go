package hexagonal_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/testenv"
)

func TestPingCheckPostgres(t *testing.T) {
	pool := testenv.PostgresPool(t, 2)
	check := hexagonal.PingCheck(pool)
	if err := check(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("check() = %v", err)
	}
	pool.Close()
	if err := check(testenv.Context(t, 10*time.Second)); err == nil {
		t.Error("check() on a closed pool = nil")
	}
}

func TestRedisCheck(t *testing.T) {
	addr := testenv.RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	check := hexagonal.RedisCheck(rdb)
	if err := check(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("check() = %v", err)
	}
	_ = rdb.Close()
	if err := check(testenv.Context(t, 10*time.Second)); err == nil {
		t.Error("check() on a closed client = nil")
	}
	// Nobody listens on port 1.
	down := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}, MaxRetries: -1})
	defer down.Close()
	if err := hexagonal.RedisCheck(down)(testenv.Context(t, 10*time.Second)); err == nil {
		t.Error("check() of an unreachable server = nil")
	}
}

func TestNATSCheck(t *testing.T) {
	srv := testenv.StartNATSServer(t)
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	check := hexagonal.NATSCheck(nc)
	if err := check(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("check() = %v", err)
	}
	srv.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := check(testenv.Context(t, 10*time.Second)); !errors.Is(err, hexagonal.ErrNotConnected) {
		t.Errorf("check() with the server down = %v; want ErrNotConnected", err)
	}
	srv.Start()
	for !nc.IsConnected() && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := check(testenv.Context(t, 10*time.Second)); err != nil {
		t.Errorf("check() after the reconnection = %v", err)
	}
}

func TestCheckConstructorsRefuseNil(t *testing.T) {
	for name, f := range map[string]func(){
		"PingCheck":  func() { hexagonal.PingCheck(nil) },
		"RedisCheck": func() { hexagonal.RedisCheck[*redis.StatusCmd](nil) },
		"NATSCheck":  func() { hexagonal.NATSCheck(nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r != "hexagonal: "+name+"(nil)" {
					t.Errorf("%s(nil) panicked with %v", name, r)
				}
			}()
			f()
		}()
	}
}
