package cqrs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/retry"
)

type Deposit struct {
	Account string
	Amount  int
}

func (d Deposit) Validate() error {
	if d.Amount <= 0 {
		return errors.New("amount must be positive")
	}
	return nil
}

type Balance struct{ Account string }

func TestCommandBus(t *testing.T) {
	ctx := context.Background()
	bus := cqrs.NewBus()
	var got []Deposit
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, d Deposit) error {
		got = append(got, d)
		return nil
	}))
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 5}))
	assert.Equal(t, []Deposit{{"a", 5}}, got)

	err := cqrs.HandleCommand(bus, func(ctx context.Context, d Deposit) error { return nil })
	require.ErrorIs(t, err, cqrs.ErrDuplicateHandler)
	assert.Contains(t, err.Error(), "cqrs_test.Deposit")

	err = bus.Dispatch(ctx, Balance{"a"})
	require.ErrorIs(t, err, cqrs.ErrNoHandler)
	assert.Contains(t, err.Error(), "command cqrs_test.Balance", "the error names the type")
	require.ErrorIs(t, bus.Dispatch(ctx, nil), cqrs.ErrNoHandler)
	require.Error(t, cqrs.HandleCommand[Deposit](bus, nil))
}

func TestQueryBus(t *testing.T) {
	ctx := context.Background()
	bus := cqrs.NewBus()
	require.NoError(t, cqrs.HandleQuery(bus, func(ctx context.Context, q Balance) (int, error) {
		if q.Account == "missing" {
			return 0, errors.New("no such account")
		}
		return 42, nil
	}))
	n, err := cqrs.Ask[Balance, int](ctx, bus, Balance{"a"})
	require.NoError(t, err)
	assert.Equal(t, 42, n)
	_, err = cqrs.Ask[Balance, int](ctx, bus, Balance{"missing"})
	require.EqualError(t, err, "no such account")
	_, err = cqrs.Ask[Balance, string](ctx, bus, Balance{"a"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "answers int, not string")
	_, err = cqrs.Ask[Deposit, int](ctx, bus, Deposit{})
	require.ErrorIs(t, err, cqrs.ErrNoHandler)

	require.NoError(t, cqrs.HandleCommand(bus, func(context.Context, Deposit) error { return nil }))
	_, err = cqrs.Ask[Deposit, int](ctx, bus, Deposit{})
	require.ErrorIs(t, err, cqrs.ErrNoHandler, "a command is not a query")
	require.ErrorIs(t, bus.Dispatch(ctx, Balance{}), cqrs.ErrNoHandler, "a query is not a command")
}

func TestMiddleware(t *testing.T) {
	ctx := context.Background()
	bus := cqrs.NewBus()
	var order []string
	tag := func(name string) cqrs.Middleware {
		return func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
			return func(ctx context.Context, msg any) (any, error) {
				order = append(order, name+">")
				res, err := next(ctx, msg)
				order = append(order, "<"+name)
				return res, err
			}
		}
	}
	var logs bytes.Buffer
	require.NoError(t, bus.Use(tag("outer"), tag("inner"), cqrs.Validation(), cqrs.Logging(slog.New(slog.NewTextHandler(&logs, nil)))))
	calls := 0
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, d Deposit) error {
		calls++
		order = append(order, "handler")
		return nil
	}))
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	assert.Equal(t, []string{"outer>", "inner>", "handler", "<inner", "<outer"}, order)
	assert.Contains(t, logs.String(), "cqrs: handled")

	err := bus.Dispatch(ctx, Deposit{"a", -1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid cqrs_test.Deposit: amount must be positive")
	assert.Equal(t, 1, calls, "an invalid command never reaches its handler")
}

func TestRetryingMiddleware(t *testing.T) {
	ctx := context.Background()
	bus := cqrs.NewBus()
	require.NoError(t, bus.Use(cqrs.Retrying(retry.New(retry.WithBackoff(retry.Constant(time.Millisecond)), retry.WithMaxAttempts(3)))))
	calls := 0
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, d Deposit) error {
		calls++
		if calls < 3 {
			return errors.New("conflict")
		}
		return nil
	}))
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	assert.Equal(t, 3, calls)
}

func TestBusTelemetry(t *testing.T) {
	ctx := context.Background()
	tel := telemetrytest.New(t)
	bus := cqrs.NewBus(cqrs.WithTracerProvider(tel.TracerProvider), cqrs.WithMeterProvider(tel.MeterProvider))
	require.NoError(t, cqrs.HandleCommand(bus, func(ctx context.Context, d Deposit) error {
		if d.Amount > 100 {
			return errors.New("limit exceeded")
		}
		return nil
	}))
	require.NoError(t, cqrs.HandleQuery(bus, func(ctx context.Context, q Balance) (int, error) { return 1, nil }))
	_ = bus.Dispatch(ctx, Deposit{"a", 1})
	_ = bus.Dispatch(ctx, Deposit{"a", 1000})
	_, _ = cqrs.Ask[Balance, int](ctx, bus, Balance{"a"})

	typ := cqrs.AttrCommandType.String("cqrs_test.Deposit")
	assert.Equal(t, int64(1), tel.Int64(t, "cqrs.handled", typ, cqrs.AttrOutcome.String("success")))
	other := semconv.ErrorTypeOther // the handler's error is an errors.New
	assert.Equal(t, int64(1), tel.Int64(t, "cqrs.handled", typ, cqrs.AttrOutcome.String("failure"), other))
	assert.Equal(t, uint64(1), tel.HistogramCount(t, "cqrs.handle.duration", typ, cqrs.AttrOutcome.String("failure"), other),
		"cqrs.handle.duration carries the span's error.type: %s", tel.Describe(t, "cqrs.handle.duration"))
	assert.Equal(t, uint64(1), tel.HistogramCount(t, "cqrs.handle.duration", typ, cqrs.AttrOutcome.String("success")))
	assert.Equal(t, int64(1), tel.Int64(t, "cqrs.handled", cqrs.AttrQueryType.String("cqrs_test.Balance"), cqrs.AttrOutcome.String("success")))
	var names []string
	for _, s := range tel.Spans.Ended() {
		names = append(names, s.Name())
		if s.Name() == "cqrs.command" && s.Status().Code.String() == "Error" {
			assert.Contains(t, s.Attributes(), attribute.String("cqrs.command.type", "cqrs_test.Deposit"))
		}
	}
	assert.Equal(t, "cqrs.command cqrs.command cqrs.query", strings.Join(names, " "))
}
