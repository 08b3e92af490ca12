package rediscache_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/circuitbreaker"
)

type User struct {
	ID   string
	Name string
}

func loadUser(ctx context.Context, id string) (User, error) {
	// Read the user from the database; return cache.ErrNotFound if there
	// is no such user.
	return User{ID: id, Name: "Ada"}, nil
}

// Two instances of a service, each with its own cache and store, share
// values through Redis: what one loaded the other reads from Redis, and
// a Set on one drops the copy the other holds in memory. It needs a
// Redis at PATTERNS_REDIS_ADDR (such as localhost:6379), and does nothing
// without one; the comment at its end shows what it prints then.
func Example() {
	addr := os.Getenv("PATTERNS_REDIS_ADDR")
	if addr == "" {
		return
	}
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A prefix of this run's own: another run of the example against the
	// same Redis neither sees its users nor hears its announcements.
	prefix := "example-users-" + rand.Text()[:8] + ":"
	loads := 0 // the database's reads, by either instance
	instance := func() (*cache.Cache[User], func()) {
		store, err := rediscache.New(client, rediscache.WithPrefix(prefix))
		if err != nil {
			log.Fatal(err)
		}
		users, err := cache.New(cache.WithStore(store),
			cache.WithLoader(func(ctx context.Context, id string) (User, error) {
				loads++
				return loadUser(ctx, id)
			}))
		if err != nil {
			log.Fatal(err)
		}
		return users, func() { _ = users.Close(); _ = store.Close() }
	}
	a, closeA := instance()
	defer closeA()
	b, closeB := instance()
	defer closeB()
	defer func() { _ = a.Delete(context.Background(), "42") }() // leave nothing in Redis

	u, _ := a.Get(ctx, "42") // from the database; Redis is filled in the background
	fmt.Printf("A: %s (database loads: %d)\n", u.Name, loads)
	_ = a.Flush(ctx)        // wait for that fill: an example must be deterministic
	u, _ = b.Get(ctx, "42") // from Redis
	fmt.Printf("B: %s (database loads: %d)\n", u.Name, loads)

	// After changing the user in the database, A sets the new value. B
	// drops its copy when A's announcement reaches it, a moment later.
	_ = a.Set(ctx, "42", User{ID: "42", Name: "Ada Lovelace"})
	for ctx.Err() == nil {
		if u, _ = b.Get(ctx, "42"); u.Name == "Ada Lovelace" {
			fmt.Printf("B: %s, after A's Set\n", u.Name)
			break
		}
		time.Sleep(time.Millisecond)
	}
	// With Redis, it prints:
	//
	// A: Ada (database loads: 1)
	// B: Ada (database loads: 1)
	// B: Ada Lovelace, after A's Set
}

// Every instance of the service builds its cache the same way: they share
// the values in Redis, and a Set or Delete on one drops the copies the
// others hold in memory.
func ExampleNew() {
	client := redis.NewClient(&redis.Options{
		Addr:                  "localhost:6379",
		ContextTimeoutEnabled: true,
	})
	defer client.Close()

	store, err := rediscache.New(client, rediscache.WithPrefix("users:"))
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// After users.Close (deferred later, so run first): a last attempt
		// at repairing the keys whose writes failed.
		if err := store.Close(); err != nil {
			log.Print(err)
		}
	}()
	users, err := cache.New[User](
		cache.WithStore(store),
		cache.WithTTL(10*time.Minute),
		cache.WithLoader(loadUser),
		cache.WithName("users"),
	)
	if err != nil {
		log.Fatal(err) // Redis could not be reached
	}
	defer users.Close()

	ctx := context.Background()
	u, err := users.Get(ctx, "42") // memory, else Redis, else loadUser
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Name)

	// After changing the user in the database:
	if err := users.Set(ctx, "42", User{ID: "42", Name: "Ada Lovelace"}); err != nil {
		log.Print(err) // Redis is down: the other instances learn of it when it is back
	}
}

// The store's breaker can be tuned, here to open after 3 failed round
// trips in a row and to probe Redis every 5 seconds, with jitter so that
// a fleet of instances does not probe in step.
func ExampleWithBreaker() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := rediscache.New(client,
		rediscache.WithPrefix("users:"),
		rediscache.WithTimeout(200*time.Millisecond),
		rediscache.WithBreaker(
			circuitbreaker.WithConsecutiveFailures(3),
			circuitbreaker.WithOpenDuration(5*time.Second),
			circuitbreaker.WithOpenJitter(0.2),
		),
		rediscache.WithMaxDirtyKeys(50_000),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	// ... build the caches on store
}

// Stores can be used without a cache: any process can announce keys that
// changed, and the caches of every instance drop them.
func ExampleStore_Publish() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := rediscache.New(client, rediscache.WithPrefix("users:"))
	if err != nil {
		log.Fatal(err)
	}
	// A batch job changed users 42 and 43 in the database.
	ctx := context.Background()
	for _, id := range []string{"42", "43"} {
		if err := store.Delete(ctx, id); err != nil {
			log.Print(err) // remembered, and retried until Close
		}
	}
	if err := store.Publish(ctx, "batch-job", "42", "43"); err != nil {
		log.Print(err)
	}
	// Close retries once more what failed, and says what it could not do.
	if err := store.Close(); err != nil {
		log.Print(err)
	}
}

// A process that keeps its own copies of cached values, without a cache
// of package cache, can follow the announcements itself.
func ExampleStore_Subscribe() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := rediscache.New(client, rediscache.WithPrefix("users:"))
	if err != nil {
		log.Fatal(err)
	}
	stop, err := store.Subscribe(context.Background(),
		func(source, key string) {
			fmt.Printf("%s changed user %s\n", source, key)
		},
		func() {
			fmt.Println("reconnected: announcements may have been missed")
		})
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	// ... serve until shutdown
}
