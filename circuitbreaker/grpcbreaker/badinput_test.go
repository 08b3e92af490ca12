package grpcbreaker_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"

	"github.com/otelpatterns/patterns/circuitbreaker/grpcbreaker"
)

func TestBadClientOptionsPanicNamingEveryOne(t *testing.T) {
	cases := []struct {
		name string
		opts []grpcbreaker.Option
		want []string
	}{
		{"nil option", []grpcbreaker.Option{nil}, []string{"opts[0] is nil"}},
		{"nil group", []grpcbreaker.Option{grpcbreaker.WithGroup(nil)}, []string{"WithGroup(nil)"}},
		{"nil key", []grpcbreaker.Option{grpcbreaker.WithKey(nil)}, []string{"WithKey(nil)"}},
		{"no codes", []grpcbreaker.Option{grpcbreaker.WithFailureCodes()}, []string{"at least one code"}},
		{"OK", []grpcbreaker.Option{grpcbreaker.WithFailureCodes(codes.Unavailable, codes.OK)}, []string{"OK cannot be a failure"}},
		{"unknown code", []grpcbreaker.Option{grpcbreaker.WithFailureCodes(codes.Code(40))}, []string{"unknown code 40"}},
		{"all at once", []grpcbreaker.Option{grpcbreaker.WithKey(nil), nil}, []string{"WithKey(nil)", "opts[1] is nil"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for fn, build := range map[string]func(){
				"UnaryClientInterceptor":  func() { grpcbreaker.UnaryClientInterceptor(tc.opts...) },
				"StreamClientInterceptor": func() { grpcbreaker.StreamClientInterceptor(tc.opts...) },
			} {
				msg := panicMessage(build)
				assert.Contains(t, msg, "grpcbreaker: "+fn+": ")
				for _, w := range tc.want {
					assert.Contains(t, msg, w)
				}
			}
		})
	}
}

func TestBadServerOptionsPanicNamingEveryOne(t *testing.T) {
	cases := []struct {
		name string
		opts []grpcbreaker.ServerOption
		want []string
	}{
		{"nothing to shed with", nil, []string{"give WithBreaker or WithMaxConcurrent"}},
		{"pushback alone", []grpcbreaker.ServerOption{grpcbreaker.WithPushback(0)}, []string{"give WithBreaker or WithMaxConcurrent"}},
		{"nil option", []grpcbreaker.ServerOption{nil}, []string{"opts[0] is nil"}},
		{"nil breaker", []grpcbreaker.ServerOption{grpcbreaker.WithBreaker(nil)}, []string{"WithBreaker(nil)"}},
		{"limit", []grpcbreaker.ServerOption{grpcbreaker.WithMaxConcurrent(0)}, []string{"WithMaxConcurrent(0): must be positive"}},
		{"codes", []grpcbreaker.ServerOption{grpcbreaker.WithMaxConcurrent(1), grpcbreaker.WithServerFailureCodes(codes.OK)}, []string{"WithServerFailureCodes([OK])"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for fn, build := range map[string]func(){
				"UnaryServerInterceptor":  func() { grpcbreaker.UnaryServerInterceptor(tc.opts...) },
				"StreamServerInterceptor": func() { grpcbreaker.StreamServerInterceptor(tc.opts...) },
			} {
				msg := panicMessage(build)
				assert.Contains(t, msg, "grpcbreaker: "+fn+": ")
				for _, w := range tc.want {
					assert.Contains(t, msg, w)
				}
			}
		})
	}
}

// TestNilConnAtCallTime: a key function asked about a call without a
// connection (an interceptor called directly, as in tests) gets "".
func TestNilConnAtCallTime(t *testing.T) {
	var target = "unset"
	ic := grpcbreaker.UnaryClientInterceptor(grpcbreaker.WithKey(func(_ context.Context, tg, _ string) string { target = tg; return tg }))
	assert.NoError(t, ic(context.Background(), "", nil, nil, nil, invokerFailing(nil)))
	assert.Equal(t, "", target)
}

func panicMessage(f func()) (msg string) {
	defer func() { msg, _ = recover().(string) }()
	f()
	return ""
}
