package rediscache_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
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
			log.Fatal(err)
		}
	}
	if err := store.Publish(ctx, "batch-job", "42", "43"); err != nil {
		log.Fatal(err)
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
