package cache

// MaxL2Fills is maxL2Fills, for tests.
const MaxL2Fills = maxL2Fills
