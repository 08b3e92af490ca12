package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// Codec turns values into the bytes an L2 [Store] keeps, and back.
// Implementations must be safe for concurrent use.
//
// Unmarshal must return an error for bytes that do not hold a value of V
// (which the cache then treats as a miss, see [DecodeError]) rather than
// a made-up value such as V's zero value.
type Codec[V any] interface {
	Marshal(v V) ([]byte, error)
	Unmarshal(data []byte) (V, error)
}

// JSON is the default [Codec]: encoding/json.
//
// JSON null is a value only for slices and maps, as their nil. For other
// types encoding/json would decode it without error into V's zero value (an
// empty struct, 0, "", a nil pointer), so Unmarshal reports it as an
// error, and the cache treats it as a miss and loads the key rather than
// serve that zero value; Marshal likewise refuses a value that encodes to
// null (a nil pointer or interface), which the cache then keeps in L1
// only, reporting the failed L2 write.
type JSON[V any] struct{}

// Marshal encodes v as JSON.
func (JSON[V]) Marshal(v V) ([]byte, error) {
	b, err := json.Marshal(v)
	if err == nil && isNull(b) && !nullable[V]() {
		return nil, fmt.Errorf("this %s encodes to JSON null, which Unmarshal does not take for a value", typeName[V]())
	}
	return b, err
}

// Unmarshal decodes JSON into a new V.
func (JSON[V]) Unmarshal(data []byte) (V, error) {
	var v V
	if isNull(data) && !nullable[V]() {
		return v, fmt.Errorf("JSON null is not a value of %s", typeName[V]())
	}
	err := json.Unmarshal(data, &v)
	return v, err
}

// isNull reports whether b is JSON null, with JSON whitespace around it or
// not.
func isNull(b []byte) bool {
	return bytes.Equal(bytes.Trim(b, " \t\r\n"), []byte("null"))
}

// nullable reports whether JSON null decodes into a V that is what
// encoding/json encodes as null: a nil slice or map.
func nullable[V any]() bool {
	switch reflect.TypeFor[V]().Kind() {
	case reflect.Slice, reflect.Map:
		return true
	}
	return false
}

func typeName[V any]() string { return reflect.TypeFor[V]().String() }
