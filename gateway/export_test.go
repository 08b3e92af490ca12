package gateway

// WithClock is withClock, for the tests of package gateway_test.
var WithClock = withClock
