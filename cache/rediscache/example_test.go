package rediscache_test

import (
	"context"
	"fmt"
	"log"
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
