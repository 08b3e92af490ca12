package grpcretry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

// fault is what the scripted server does on an attempt: fail with err
// (after sending sendFirst messages, for a stream), with trailer.
type fault struct {
	err       error
	trailer   metadata.MD
	sendFirst int
	afterRecv int  // FullDuplexCall: fail once this many messages have arrived
	block     bool // wait for the call's context to end, then fail with its error
}

// server is a TestService whose answers are scripted per attempt number
// (1 for the first call of a method), and which records what it got.
type server struct {
	testpb.UnimplementedTestServiceServer

	script func(method string, attempt int) *fault

	mu    sync.Mutex
	calls map[string]int
	md    []metadata.MD // incoming metadata, in call order
	recvd [][]int32     // FullDuplexCall: the sizes received, per attempt
	reqs  []int         // StreamingOutputCall: how many parameters each attempt got
	ctxs  []context.Context
}

func (s *server) begin(ctx context.Context, method string) (int, *fault) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[method]++
	n := s.calls[method]
	md, _ := metadata.FromIncomingContext(ctx)
	s.md = append(s.md, md)
	s.ctxs = append(s.ctxs, ctx)
	s.mu.Unlock()
	if s.script == nil {
		return n, nil
	}
	return n, s.script(method, n)
}

func (s *server) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

func (s *server) metadata() []metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]metadata.MD(nil), s.md...)
}

func (f *fault) apply(ctx context.Context, setTrailer func(metadata.MD)) error {
	if f.trailer != nil {
		setTrailer(f.trailer)
	}
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}

func (s *server) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n, f := s.begin(ctx, "UnaryCall")
	if f != nil {
		if err := f.apply(ctx, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }); err != nil {
			return nil, err
		}
	}
	return &testpb.SimpleResponse{Username: string(rune('0' + n))}, nil
}

func (s *server) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	_, f := s.begin(ctx, "EmptyCall")
	if f != nil {
		if err := f.apply(ctx, func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }); err != nil {
			return nil, err
		}
	}
	return &testpb.Empty{}, nil
}

func (s *server) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, st grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	_, f := s.begin(st.Context(), "StreamingOutputCall")
	s.mu.Lock()
	s.reqs = append(s.reqs, len(req.ResponseParameters))
	s.mu.Unlock()
	for i, p := range req.ResponseParameters {
		if f != nil && i == f.sendFirst {
			return f.apply(st.Context(), st.SetTrailer)
		}
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.Size)}}); err != nil {
			return err
		}
	}
	if f != nil && f.sendFirst >= len(req.ResponseParameters) {
		return f.apply(st.Context(), st.SetTrailer)
	}
	return nil
}

// FullDuplexCall reads every request until the client closes its side,
// then answers each with a payload of the size it asked for.
func (s *server) FullDuplexCall(st grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	_, f := s.begin(st.Context(), "FullDuplexCall")
	var sizes []int32
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		for _, p := range req.ResponseParameters {
			sizes = append(sizes, p.Size)
		}
		if f != nil && f.afterRecv > 0 && len(sizes) == f.afterRecv {
			s.mu.Lock()
			s.recvd = append(s.recvd, sizes)
			s.mu.Unlock()
			return f.apply(st.Context(), st.SetTrailer)
		}
	}
	s.mu.Lock()
	s.recvd = append(s.recvd, sizes)
	s.mu.Unlock()
	if f != nil && f.sendFirst == 0 {
		return f.apply(st.Context(), st.SetTrailer)
	}
	for i, n := range sizes {
		if f != nil && i == f.sendFirst {
			return f.apply(st.Context(), st.SetTrailer)
		}
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) StreamingInputCall(st grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	_, f := s.begin(st.Context(), "StreamingInputCall")
	var total int32
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		total += int32(len(req.GetPayload().GetBody()))
	}
	if f != nil {
		if err := f.apply(st.Context(), st.SetTrailer); err != nil {
			return err
		}
	}
	return st.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: total})
}

// serve starts srv on an in-memory bufconn listener (or on loopback TCP
// with tcp) and returns a client connection with the dial options given.
// Both are closed when the test ends.
func serve(t *testing.T, srv *server, tcp bool, serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	gs := grpc.NewServer(serverOpts...)
	testpb.RegisterTestServiceServer(gs, srv)
	var lis net.Listener
	target := "passthrough:///bufnet"
	if tcp {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lis, target = l, l.Addr().String()
	} else {
		bl := bufconn.Listen(1 << 20)
		lis = bl
		dialOpts = append(dialOpts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		gs.Stop()
		<-done
	})
	return cc
}
