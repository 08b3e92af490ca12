// Package nilcheck holds the one typed-nil check the library's
// constructors share.
//
// A nil pointer stored in an interface is not equal to nil:
//
//	var s *Store           // nil
//	var i Interface = s    // i != nil, but i.Method() dereferences nil
//
// Constructors that take an interface (a store, a bus, a client) call
// [IsNil] so that such a value is reported as bad input with the
// argument's name, instead of panicking on first use.
package nilcheck

import "reflect"

// IsNil reports whether v is nil, or an interface holding a nil pointer,
// map, slice, channel, function or interface: a value whose methods or
// calls would fail on a nil receiver. Any other value, including a zero
// struct or a zero number, is not nil.
func IsNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return rv.IsNil()
	}
	return false
}
