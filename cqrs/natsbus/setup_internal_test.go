package natsbus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// Setup tries again only when the server failed to create the stream's
// store, which is the one transient failure of creating a stream.
func TestStoreFailed(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("wrapped: %w", &jetstream.APIError{Code: 500, ErrorCode: storeFailedCode}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse}, false},
		{errors.New("error creating store for stream"), false},
		{nil, false},
	} {
		if got := storeFailed(tc.err); got != tc.want {
			t.Errorf("storeFailed(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
