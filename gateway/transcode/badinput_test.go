package transcode_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/transcode"
)

func TestNewBadInput(t *testing.T) {
	_, err := transcode.New("")
	assert.EqualError(t, err, "transcode: upstream: must not be empty")

	_, err = transcode.New("inventory")
	assert.EqualError(t, err, "transcode: no service: give one with WithService")

	_, err = transcode.New("inventory",
		nil,
		transcode.WithService("no.such.Service"),
		transcode.WithService("inventory.v1.Item"),
		transcode.WithServiceDescriptor(nil),
		transcode.WithUpstreamHandler(nil),
		transcode.WithMaxMessageBytes(0),
	)
	require.Error(t, err)
	for _, want := range []string{
		"opts[0] is nil",
		`WithService("no.such.Service"): `,
		`WithService("inventory.v1.Item"): not a service`,
		"WithServiceDescriptor: nil descriptor",
		"WithUpstreamHandler: nil handler",
		"WithMaxMessageBytes(0): must be in 1..4294967295",
	} {
		assert.Contains(t, err.Error(), want)
	}

	_, err = transcode.New("inventory",
		transcode.WithService("inventory.v1.InventoryService"),
		transcode.WithService("inventory.v1.InventoryService"))
	assert.ErrorContains(t, err, `WithService("inventory.v1.InventoryService"): given twice`)
}

// A Transcoder not made by New answers 500 instead of dereferencing nil.
func TestTranscoderNotMadeByNew(t *testing.T) {
	for name, tr := range map[string]*transcode.Transcoder{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tr.ServeHTTP(w, httptest.NewRequest("GET", "/v1/items/x", nil))
			assert.Equal(t, http.StatusInternalServerError, w.Code)
			assert.Empty(t, tr.Patterns())
			assert.Empty(t, tr.Routes(gateway.Route{}))
		})
	}
}
