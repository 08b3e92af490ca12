package grpcretry_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/retry/grpcretry"
)

func TestBadOptionsPanicNamingEveryOne(t *testing.T) {
	r := retry.New()
	cases := []struct {
		name string
		opts []grpcretry.Option
		want []string
	}{
		{"nil option", []grpcretry.Option{nil}, []string{"opts[0] is nil"}},
		{"nil predicate", []grpcretry.Option{grpcretry.WithSafe(nil)}, []string{"WithSafe(nil)"}},
		{"bad method", []grpcretry.Option{grpcretry.WithMethods("/s.S/M", "Method")}, []string{`fullMethods[1] = "Method"`}},
		{"no codes", []grpcretry.Option{grpcretry.WithRetryCodes()}, []string{"WithRetryCodes(): at least one"}},
		{"OK code", []grpcretry.Option{grpcretry.WithRetryCodes(codes.OK)}, []string{"code OK cannot be retried"}},
		{"unknown code", []grpcretry.Option{grpcretry.WithRetryCodes(codes.Code(99))}, []string{"cannot be retried"}},
		{"timeout", []grpcretry.Option{grpcretry.WithPerAttemptTimeout(0)}, []string{"WithPerAttemptTimeout(0s): must be positive"}},
		{"pushback", []grpcretry.Option{grpcretry.WithMaxPushback(-1)}, []string{"WithMaxPushback(-1ns)"}},
		{"buffer", []grpcretry.Option{grpcretry.WithMaxBuffered(0)}, []string{"WithMaxBuffered(0)"}},
		{"all at once", []grpcretry.Option{grpcretry.WithMaxBuffered(0), nil, grpcretry.WithSafe(nil)},
			[]string{"WithMaxBuffered(0)", "opts[1] is nil", "WithSafe(nil)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, build := range []func(){
				func() { grpcretry.UnaryClientInterceptor(r, tc.opts...) },
				func() { grpcretry.StreamClientInterceptor(r, tc.opts...) },
			} {
				msg := panicMessage(build)
				assert.Contains(t, msg, "grpcretry: ")
				for _, w := range tc.want {
					assert.Contains(t, msg, w)
				}
			}
		})
	}
}

func TestNilRetrierPanics(t *testing.T) {
	assert.Contains(t, panicMessage(func() { grpcretry.UnaryClientInterceptor(nil) }), "UnaryClientInterceptor: r is nil")
	assert.Contains(t, panicMessage(func() { grpcretry.StreamClientInterceptor(nil) }), "StreamClientInterceptor: r is nil")
}

// TestOddInputAtCallTime: odd method names and errors that are not
// statuses never panic.
func TestOddInputAtCallTime(t *testing.T) {
	ic := grpcretry.UnaryClientInterceptor(fast())
	for _, m := range []string{"", "/", "//", "/a/b/c", "no-slash", "/pkg.Svc/"} {
		f := &fakeInvoker{answer: func(context.Context, int) (metadata.MD, error) {
			return metadata.MD{grpcretry.PushbackKey: {""}}, status.Error(codes.Unavailable, "x")
		}}
		err := ic(context.Background(), m, nil, nil, nil, f.invoke)
		assert.Equal(t, codes.Unavailable, status.Code(err), "method %q", m)
		assert.Len(t, f.starts, 1, "method %q is not safe", m)
	}
}

func panicMessage(f func()) (msg string) {
	defer func() { msg, _ = recover().(string) }()
	f()
	return ""
}
