package saga

import (
	"reflect"
	"testing"
	"time"
)

func TestPlainType(t *testing.T) {
	type inner struct {
		A [3]int
		S string
	}
	type withPtr struct{ P *int }
	type withUnexported struct{ m map[string]int }
	_ = withUnexported{}.m
	for _, tt := range []struct {
		v    any
		want bool
	}{
		{0, true}, {"s", true}, {1.5, true}, {[2]string{}, true}, {time.Time{}, true},
		{struct {
			I  inner
			At time.Time
		}{}, true},
		{[]int{}, false}, {map[string]int{}, false}, {withPtr{}, false}, {withUnexported{}, false},
		{struct{ E error }{}, false}, {struct{ F func() }{}, false}, {[1][]int{}, false},
	} {
		if got := plainType(reflect.TypeOf(tt.v)); got != tt.want {
			t.Errorf("plainType(%T) = %v; want %v", tt.v, got, tt.want)
		}
	}
}
