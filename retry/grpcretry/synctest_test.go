package grpcretry_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// fakeInvoker answers attempt n (from 1) with answer(ctx, n), setting the
// trailer it returns as gRPC does through grpc.Trailer, and records when
// each attempt started.
type fakeInvoker struct {
	answer func(ctx context.Context, n int) (metadata.MD, error)
	starts []time.Time
}

func (f *fakeInvoker) invoke(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
	f.starts = append(f.starts, time.Now())
	md, err := f.answer(ctx, len(f.starts))
	for _, o := range opts {
		if t, ok := o.(grpc.TrailerCallOption); ok {
			*t.TrailerAddr = md
		}
	}
	return err
}

func (f *fakeInvoker) gaps() []time.Duration {
	var d []time.Duration
	for i := 1; i < len(f.starts); i++ {
		d = append(d, f.starts[i].Sub(f.starts[i-1]))
	}
	return d
}

func pushbackMD(ms string) metadata.MD { return metadata.Pairs(grpcretry.PushbackKey, ms) }

func TestSynctestPushbackIsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(time.Hour)), retry.WithMaxAttempts(3))
		ic := grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods("/s.S/M"))
		f := &fakeInvoker{answer: func(_ context.Context, n int) (metadata.MD, error) {
			if n < 3 {
				return pushbackMD([]string{"1500", "250"}[n-1]), status.Error(codes.Unavailable, "busy")
			}
			return nil, nil
		}}
		err := ic(context.Background(), "/s.S/M", nil, nil, nil, f.invoke)
		assert.NoError(t, err)
		assert.Equal(t, []time.Duration{1500 * time.Millisecond, 250 * time.Millisecond}, f.gaps())
	})
}

func TestSynctestNeverWaitsPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(time.Millisecond)), retry.WithMaxAttempts(10))
		ic := grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods("/s.S/M"))
		f := &fakeInvoker{answer: func(_ context.Context, n int) (metadata.MD, error) {
			return pushbackMD("400"), status.Error(codes.Unavailable, "busy")
		}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := ic(ctx, "/s.S/M", nil, nil, nil, f.invoke)
		assert.Equal(t, codes.Unavailable, status.Code(err), "the last attempt's status")
		assert.ErrorIs(t, err, retry.ErrExhausted)
		assert.Len(t, f.starts, 3, "at 0, 400ms and 800ms; a wait to 1.2s would pass the deadline")
		assert.Equal(t, 800*time.Millisecond, time.Since(start), "gave up at once after the third attempt")
	})
}

func TestSynctestPerAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(10*time.Millisecond)), retry.WithJitter(retry.NoJitter), retry.WithMaxAttempts(3))
		ic := grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods("/s.S/M"), grpcretry.WithPerAttemptTimeout(time.Second))
		f := &fakeInvoker{answer: func(ctx context.Context, n int) (metadata.MD, error) {
			if n == 1 {
				<-ctx.Done()
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return nil, nil
		}}
		err := ic(context.Background(), "/s.S/M", nil, nil, nil, f.invoke)
		assert.NoError(t, err)
		assert.Equal(t, []time.Duration{time.Second + 10*time.Millisecond}, f.gaps())
	})
}

// TestSynctestCallerDeadlineBeatsPerAttemptTimeout: when the call's own
// deadline comes first, the DeadlineExceeded is the caller's and is not
// retried.
func TestSynctestCallerDeadlineBeatsPerAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := retry.New(retry.WithBackoff(retry.Constant(0)))
		ic := grpcretry.UnaryClientInterceptor(r, grpcretry.WithMethods("/s.S/M"), grpcretry.WithPerAttemptTimeout(time.Second))
		f := &fakeInvoker{answer: func(ctx context.Context, n int) (metadata.MD, error) {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		err := ic(ctx, "/s.S/M", nil, nil, nil, f.invoke)
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
		assert.Len(t, f.starts, 2, "the first attempt timed out on its own; the second on the caller's deadline")
	})
}
