package rediscache

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		source string
		keys   []string
	}{
		{"one key", "a1b2", []string{"user:42"}},
		{"no keys", "a1b2", []string{}},
		{"empty source and key", "", []string{""}},
		{"binary", "\x00\xff", []string{"\x00", "\xff\xfe", "ünï", "\x01\x02\x03"}},
		{"looks like JSON", `{"s":"x"}`, []string{`","k":["y"]}`, "[", "]"}},
		{"long", strings.Repeat("s", 300), []string{strings.Repeat("k", 70000), "short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, keys, err := decode(string(encode(tt.source, tt.keys)))
			require.NoError(t, err)
			assert.Equal(t, tt.source, src)
			assert.Equal(t, tt.keys, keys)
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	valid := string(encode("src", []string{"a", "bc"}))
	tests := []struct{ name, msg string }{
		{"empty", ""},
		{"other version", "\x02" + valid[1:]},
		{"JSON", `{"s":"src","k":["a"]}`},
		{"text", "hello"},
		{"version only", "\x01"},
		{"source runs past the end", "\x01\x05abc"},
		{"no key count", "\x01\x03src"},
		{"more keys than bytes", "\x01\x03src\x7f\x01a"},
		{"key runs past the end", "\x01\x03src\x01\x05ab"},
		{"missing key", "\x01\x03src\x02\x01a"},
		{"trailing bytes", valid + "x"},
		{"truncated", valid[:len(valid)-1]},
		{"unterminated varint", "\x01\xff\xff"},
		{"overflowing varint", "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"},
		{"huge length", "\x01" + string(binary.AppendUvarint(nil, 1<<62)) + "abc"},
		{"huge key count", "\x01\x00" + string(binary.AppendUvarint(nil, 1<<62))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decode(tt.msg)
			assert.ErrorIs(t, err, errMalformed, "decode(%q)", tt.msg)
		})
	}
}

func TestUvarintMatchesBinary(t *testing.T) {
	for _, b := range [][]byte{
		{}, {0}, {1}, {0x7f}, {0x80}, {0x80, 0x01}, {0xff, 0xff, 0x03},
		binary.AppendUvarint(nil, 1<<63), binary.AppendUvarint(nil, 1<<64-1),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		wantX, wantN := binary.Uvarint(b)
		x, n := uvarint(string(b))
		assert.Equal(t, wantX, x, "uvarint(%x)", b)
		assert.Equal(t, wantN > 0, n > 0, "uvarint(%x) = _, %d; binary.Uvarint says %d", b, n, wantN)
		if wantN > 0 {
			assert.Equal(t, wantN, n, "uvarint(%x)", b)
		}
	}
}

// FuzzDecode feeds decode arbitrary messages, as anyone who can publish on
// the channel can: it must never panic, and what it accepts must encode
// back to a message that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add(string(encode("a1b2c3d4", []string{"user:42"})))
	f.Add(string(encode("", []string{"", "\x00\xff"})))
	f.Add(string(encode("src", nil)))
	f.Add(`{"s":"src","k":["a"]}`)
	f.Add("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Fuzz(func(t *testing.T, msg string) {
		src, keys, err := decode(msg)
		if err != nil {
			return
		}
		src2, keys2, err := decode(string(encode(src, keys)))
		if err != nil || src2 != src || !slices.Equal(keys, keys2) {
			t.Fatalf("decode(encode(decode(%q))) = %q, %q, %v; want %q, %q", msg, src2, keys2, err, src, keys)
		}
	})
}

// FuzzEncode checks that any source and keys survive the round trip.
func FuzzEncode(f *testing.F) {
	f.Add("a1b2", "user:42", "")
	f.Add("\x00", "\xff\xfe", "\x01")
	f.Fuzz(func(t *testing.T, source, k1, k2 string) {
		keys := []string{k1, k2}
		src, got, err := decode(string(encode(source, keys)))
		if err != nil || src != source || !slices.Equal(got, keys) {
			t.Fatalf("decode(encode(%q, %q)) = %q, %q, %v", source, keys, src, got, err)
		}
	})
}
