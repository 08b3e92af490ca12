package grpchealth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"

	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/hexagonal/grpchealth"
)

// A service mapped to a readiness check follows it; the overall service
// follows every check.
func ExampleServer_Status() {
	var down atomic.Bool
	health, err := hexagonal.NewHealth(
		hexagonal.WithCheckInterval(0),
		hexagonal.WithReadinessCheck("postgres", func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		}),
		hexagonal.WithReadinessCheck("redis", func(context.Context) error { return nil }),
	)
	if err != nil {
		log.Fatal(err)
	}
	hs, err := grpchealth.New(health,
		grpchealth.WithService("inventory.v1.InventoryService", "postgres"),
		grpchealth.WithService("sessions.v1.Sessions", "redis"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, svc := range []string{"", "inventory.v1.InventoryService", "sessions.v1.Sessions", "other"} {
		fmt.Printf("%q: %v\n", svc, hs.Status(ctx, svc))
	}
	down.Store(true)
	fmt.Println("postgres fails")
	for _, svc := range []string{"", "inventory.v1.InventoryService", "sessions.v1.Sessions"} {
		fmt.Printf("%q: %v\n", svc, hs.Status(ctx, svc))
	}
	// Output:
	// "": SERVING
	// "inventory.v1.InventoryService": SERVING
	// "sessions.v1.Sessions": SERVING
	// "other": SERVICE_UNKNOWN
	// postgres fails
	// "": NOT_SERVING
	// "inventory.v1.InventoryService": NOT_SERVING
	// "sessions.v1.Sessions": SERVING
}
