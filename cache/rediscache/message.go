package rediscache

import (
	"encoding/binary"
	"errors"
)

// The wire format of an invalidation message, version 1:
//
//	0x01                      format version
//	uvarint len(source)  source
//	uvarint number of keys
//	for each key: uvarint len(key)  key
//
// Lengths are in bytes, and strings are their bytes as given, so every key
// survives, whatever bytes it holds. A message with no keys, which Publish
// never sends, announces that every key may have changed (the store sends
// it after flushing its prefix): subscribers drop everything, as after a
// reconnection. Subscribers that predate it decode it as a message
// without keys and do nothing, so it is safe in a mixed fleet. A message with anything after its last
// key, a length running past its end, or another first byte is malformed.
const formatV1 = 0x01

var errMalformed = errors.New("malformed invalidation message")

// encode returns the message announcing keys on behalf of source.
func encode(source string, keys []string) []byte {
	n := 1 + binary.MaxVarintLen64*(2+len(keys)) + len(source)
	for _, k := range keys {
		n += len(k)
	}
	b := make([]byte, 0, n)
	b = append(b, formatV1)
	b = binary.AppendUvarint(b, uint64(len(source)))
	b = append(b, source...)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return b
}

// decode parses a message made by encode. It never panics, whatever msg
// holds.
func decode(msg string) (source string, keys []string, err error) {
	if len(msg) == 0 || msg[0] != formatV1 {
		return "", nil, errMalformed
	}
	rest := msg[1:]
	next := func() (string, bool) {
		n, w := uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return "", false
		}
		s := rest[w : w+int(n)]
		rest = rest[w+int(n):]
		return s, true
	}
	source, ok := next()
	if !ok {
		return "", nil, errMalformed
	}
	count, w := uvarint(rest)
	// Each key takes at least one byte (its length), which bounds count
	// before anything is allocated for it.
	if w <= 0 || count > uint64(len(rest)-w) {
		return "", nil, errMalformed
	}
	rest = rest[w:]
	keys = make([]string, 0, count)
	for range count {
		k, ok := next()
		if !ok {
			return "", nil, errMalformed
		}
		keys = append(keys, k)
	}
	if len(rest) != 0 {
		return "", nil, errMalformed
	}
	return source, keys, nil
}

// uvarint is binary.Uvarint over a string, without converting it.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
