package nilcheck_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/otelpatterns/patterns/internal/nilcheck"
)

type stringer interface{ String() string }

type named struct{ name string }

func (n *named) String() string { return n.name }

type value struct{}

func (value) String() string { return "value" }

func TestIsNil(t *testing.T) {
	var (
		nilPointer *named
		nilMap     map[string]int
		nilSlice   []int
		nilChan    chan int
		nilFunc    func()
		nilErr     error
		nilIface   stringer = nilPointer
		nilUnsafe  unsafe.Pointer
	)
	x := 0
	tests := []struct {
		name string
		v    any
		want bool
	}{
		{"untyped nil", nil, true},
		{"nil pointer", nilPointer, true},
		{"nil pointer in an interface", nilIface, true},
		{"nil map", nilMap, true},
		{"nil slice", nilSlice, true},
		{"nil channel", nilChan, true},
		{"nil function", nilFunc, true},
		{"nil error interface", nilErr, true},
		{"nil unsafe pointer", nilUnsafe, true},
		{"pointer", &named{name: "a"}, false},
		{"pointer in an interface", stringer(&named{}), false},
		{"map", map[string]int{}, false},
		{"empty slice", []int{}, false},
		{"channel", make(chan int), false},
		{"function", func() {}, false},
		{"error", errors.New("e"), false},
		{"unsafe pointer", unsafe.Pointer(&x), false},
		{"zero struct", value{}, false},
		{"zero struct in an interface", stringer(value{}), false},
		{"zero int", 0, false},
		{"empty string", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, nilcheck.IsNil(tt.v))
		})
	}
}
