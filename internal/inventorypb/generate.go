// Package inventorypb is the generated code of the inventory service
// (proto/inventory/v1/inventory.proto) that examples/grpc serves and
// gateway/transcode's tests transcode: GetItem and Reserve, unary with
// google.api.http annotations, and WatchStock, server streaming.
//
// Regenerate with go generate after changing the .proto; buf, and the
// protoc-gen-go and protoc-gen-go-grpc plugins, run through go run.
package inventorypb

//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
