//go:build !race

package graph

// raceSlowdown is how many times cpuBound grows under the race detector.
const raceSlowdown = 1
