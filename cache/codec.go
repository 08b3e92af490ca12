package cache

import "encoding/json"

// Codec turns values into the bytes an L2 [Store] keeps, and back.
// Implementations must be safe for concurrent use.
type Codec[V any] interface {
	Marshal(v V) ([]byte, error)
	Unmarshal(data []byte) (V, error)
}

// JSON is the default [Codec]: encoding/json.
type JSON[V any] struct{}

// Marshal encodes v as JSON.
func (JSON[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into a new V.
func (JSON[V]) Unmarshal(data []byte) (V, error) {
	var v V
	err := json.Unmarshal(data, &v)
	return v, err
}
