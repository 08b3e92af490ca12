package gateway

// WithClock is withClock, for the tests of package gateway_test.
var WithClock = withClock

// RawUpstream is rawUpstream, for the tests of package gateway_test.
var RawUpstream = rawUpstream
