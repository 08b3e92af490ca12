package infra_test

import (
	"testing"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/bank/infra"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// TestUpcastDepositedV0 checks the upcaster of the old deposit event.
func TestUpcastDepositedV0(t *testing.T) {
	reg := infra.NewRegistry()
	tests := []struct {
		data    string
		want    int64
		wantErr bool
	}{
		{`{"value":"12.50","currency":"EUR"}`, 1250, false},
		{`{"value":"12.5","currency":"EUR"}`, 1250, false},
		{`{"value":"7","currency":"EUR"}`, 700, false},
		{`{"value":"0.05","currency":"EUR"}`, 5, false},
		{`{"value":"12.50","currency":"USD"}`, 0, true},
		{`{"value":"12.505","currency":"EUR"}`, 0, true},
		{`{"value":"-3.00","currency":"EUR"}`, 0, true},
		{`{"value":"+3.00","currency":"EUR"}`, 0, true},
		{`{"value":"3.","currency":"EUR"}`, 0, true},
		{`{"value":".5","currency":"EUR"}`, 0, true},
		{`{"value":"","currency":"EUR"}`, 0, true},
		{`{"value":12.5,"currency":"EUR"}`, 0, true},
		{`not json`, 0, true},
	}
	for _, tt := range tests {
		got, err := reg.Decode(eventsource.Event{Type: infra.TypeDepositedV0, Data: []byte(tt.data)})
		want := model.Deposited{Amount: model.EUR(tt.want)}
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("Decode(%s) = %v; want an error", tt.data, got)
		case !tt.wantErr && (err != nil || got != want):
			t.Errorf("Decode(%s) = %v, %v; want %v", tt.data, got, err, want)
		}
	}
}
