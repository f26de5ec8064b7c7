//go:build race

package glob

// slowdown scales CPU bounds: the race detector makes loops ~10x slower.
const slowdown = 10
