//go:build !otlp

package prodotel

import (
	"context"
	"errors"
	"testing"
)

func TestOTLPWithoutTagFails(t *testing.T) {
	for _, env := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
		{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"},
		{"OTEL_TRACES_EXPORTER": "otlp"},
	} {
		for _, k := range otelVars {
			t.Setenv(k, env[k])
		}
		tel, err := New(context.Background(), Config{ServiceName: "svc"})
		if !errors.Is(err, errNoOTLP) {
			if tel != nil {
				_ = tel.Shutdown(context.Background())
			}
			t.Errorf("%v: New error %v, want errNoOTLP", env, err)
		}
	}
}
