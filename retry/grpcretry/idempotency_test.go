package grpcretry_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/emptypb" // registers google/protobuf/empty.proto

	"github.com/otelpatterns/patterns/retry/grpcretry"
)

// registerIdempotencyService registers, once, a service whose methods
// carry each idempotency level, as protoc-generated code would.
func registerIdempotencyService(t *testing.T) {
	t.Helper()
	if _, err := protoregistry.GlobalFiles.FindFileByPath("grpcretry_test/idem.proto"); err == nil {
		return
	}
	method := func(name string, level *descriptorpb.MethodOptions_IdempotencyLevel) *descriptorpb.MethodDescriptorProto {
		m := &descriptorpb.MethodDescriptorProto{Name: proto.String(name), InputType: proto.String(".google.protobuf.Empty"), OutputType: proto.String(".google.protobuf.Empty")}
		if level != nil {
			m.Options = &descriptorpb.MethodOptions{IdempotencyLevel: level}
		}
		return m
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("grpcretry_test/idem.proto"),
		Package:    proto.String("grpcretry.idem"),
		Dependency: []string{"google/protobuf/empty.proto"},
		Syntax:     proto.String("proto3"),
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("Svc"),
			Method: []*descriptorpb.MethodDescriptorProto{
				method("Get", descriptorpb.MethodOptions_NO_SIDE_EFFECTS.Enum()),
				method("Put", descriptorpb.MethodOptions_IDEMPOTENT.Enum()),
				method("Post", nil),
				method("Unknown", descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN.Enum()),
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	require.NoError(t, err)
	require.NoError(t, protoregistry.GlobalFiles.RegisterFile(fd))
}

func TestIdempotencyLevelMakesMethodsSafe(t *testing.T) {
	registerIdempotencyService(t)
	cases := map[string]bool{
		"/grpcretry.idem.Svc/Get":     true,
		"/grpcretry.idem.Svc/Put":     true,
		"/grpcretry.idem.Svc/Post":    false,
		"/grpcretry.idem.Svc/Unknown": false,
		"/grpcretry.idem.Svc/Missing": false,
		"/grpcretry.idem.Nope/Get":    false,
	}
	for _, byLevel := range []bool{true, false} {
		var opts []grpcretry.Option
		if !byLevel {
			opts = append(opts, grpcretry.WithoutIdempotencyLevel())
		}
		ic := grpcretry.UnaryClientInterceptor(fast(), opts...)
		for m, safe := range cases {
			for range 2 { // the second answer comes from the cache
				f := &fakeInvoker{answer: func(_ context.Context, n int) (metadata.MD, error) {
					if n == 1 {
						return nil, status.Error(codes.Unavailable, "x")
					}
					return nil, nil
				}}
				_ = ic(context.Background(), m, nil, nil, nil, f.invoke)
				want := 1
				if safe && byLevel {
					want = 2
				}
				assert.Len(t, f.starts, want, "%s (by idempotency level: %v)", m, byLevel)
			}
		}
	}
}
