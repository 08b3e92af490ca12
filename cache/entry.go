package cache

// entry is what L1 holds: a value, or a cached "not found", with the time
// it expires and, with [WithRefreshAhead], the time after which a read
// triggers a refresh, packed into meta. It is kept as small as it can be:
// ristretto's map holds it inline and every L1 hit copies it, and a third
// word cost a hit about 7% of plain ristretto's.
//
// meta's low 62 bits are the expiry in unix nanoseconds (0 for never,
// which leaves until the year 2116); bit 62 marks a cached "not found".
// Bit 63 marks an entry to refresh ahead: its low 16 bits then hold the
// refresh's lead over the expiry (see leadCode), and the expiry is
// rounded up to 2^16 ns (66 µs, well under the clock's tick).
//
// The cache checks expiry itself, against its coarse clock, rather than
// giving ristretto the TTL: ristretto's Get reads time.Now for every entry
// that has one, which cost as much as the rest of a hit. An expired entry
// that is read is removed then; one that is not read stays until TinyLFU
// evicts it to make room (it is never served), as a cold entry would be.
type entry[V any] struct {
	v    V
	meta int64
}

const (
	expiryMask  = 1<<62 - 1
	notFoundBit = 1 << 62
	refreshBit  = -1 << 63
	flagMask    = notFoundBit | refreshBit

	// A refresh's lead is mantissa << exponent units of 2^codeBits ns:
	// within 0.1% and a unit of the lead asked for, up to about 9 years.
	codeBits     = 16
	codeMask     = 1<<codeBits - 1
	mantissaBits = 11
	mantissaMask = 1<<mantissaBits - 1
	maxExponent  = 1<<(codeBits-mantissaBits) - 1
)

// notFoundEntry returns the entry of a cached "not found".
func notFoundEntry[V any]() entry[V] { return entry[V]{meta: notFoundBit} }

// expiresAt returns the expiry in meta, in unix nanoseconds, 0 for never.
func expiresAt(meta int64) int64 {
	exp := meta & expiryMask
	if meta < 0 { // refreshBit
		exp &^= codeMask
	}
	return exp
}

// expires returns e's expiry in unix nanoseconds, 0 for never.
func (e entry[V]) expires() int64 { return expiresAt(e.meta) }

// notFound reports whether e is a cached "not found".
func (e entry[V]) notFound() bool { return e.meta&notFoundBit != 0 }

// refreshAt returns when a read of e should refresh it, in unix
// nanoseconds, 0 for never.
func (e entry[V]) refreshAt() int64 {
	if e.meta >= 0 {
		return 0
	}
	return e.expires() - leadOf(e.meta&codeMask)
}

// packed returns e set to expire at expires (unix nanoseconds, 0 for
// never) and to be refreshed at refreshAt (0 for never); a cached "not
// found" stays one, and is never refreshed. A refresh is kept only if it
// comes before the expiry, which is then rounded up to a unit; the lead
// is rounded down, so the refresh comes at most 0.1% of the lead and a
// unit later than asked, never earlier (a lead of over 9 years is cut to
// that).
func (e entry[V]) packed(expires, refreshAt int64) entry[V] {
	notFound := e.meta & notFoundBit
	if expires > expiryMask&^codeMask { // past 2116: never, in effect
		expires = expiryMask &^ codeMask
	}
	if notFound != 0 || expires == 0 || refreshAt == 0 || refreshAt >= expires {
		e.meta = expires | notFound
		return e
	}
	up := (expires + codeMask) &^ codeMask // never expire early
	code := leadCode(up - refreshAt)
	if code == 0 { // a lead under a unit: refreshing would not come first
		e.meta = expires
		return e
	}
	e.meta = refreshBit | up | code
	return e
}

// leadCode returns the code of a refresh lead of ns nanoseconds
// (positive), rounded down: 0, none, if under a unit.
func leadCode(ns int64) int64 {
	u := uint64(ns) >> codeBits
	exp := 0
	for u > mantissaMask && exp < maxExponent {
		u >>= 1
		exp++
	}
	return int64(exp)<<mantissaBits | int64(min(u, mantissaMask))
}

// leadOf returns the lead, in nanoseconds, of a code from leadCode.
func leadOf(code int64) int64 {
	return (code & mantissaMask) << (code >> mantissaBits) << codeBits
}
