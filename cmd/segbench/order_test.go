package main

import (
	"fmt"
	"testing"
)

// TestContenderOrderIsBalanced checks that over a cycle of repetitions each contender
// runs once per repetition, first equally often, and directly after each other
// contender equally often, so that what one leaves behind falls on every other alike
// (a rotation had base always follow the floor, and ours base).
func TestContenderOrderIsBalanced(t *testing.T) {
	for n := 1; n <= 6; n++ {
		cycle := n
		if n%2 == 1 {
			cycle = 2 * n
		}
		firsts := map[int]int{}
		follows := map[[2]int]int{}
		for rep := range 2 * cycle {
			order := contenderOrder(n, rep)
			seen := map[int]bool{}
			for _, i := range order {
				if i < 0 || i >= n || seen[i] {
					t.Fatalf("n %d, rep %d: %v is not an order of %d contenders", n, rep, order, n)
				}
				seen[i] = true
			}
			if len(order) != n {
				t.Fatalf("n %d, rep %d: %v is not an order of %d contenders", n, rep, order, n)
			}
			firsts[order[0]]++
			for j := 1; j < n; j++ {
				follows[[2]int{order[j-1], order[j]}]++
			}
		}
		for i := range n {
			if got, want := firsts[i], 2*cycle/n; got != want {
				t.Errorf("n %d: contender %d first in %d of %d repetitions, want %d", n, i, got, 2*cycle, want)
			}
		}
		for a := range n {
			for b := range n {
				if a == b {
					continue
				}
				if got, want := follows[[2]int{a, b}], 2*cycle/n; got != want {
					t.Errorf("n %d: %d ran right after %d in %d of %d repetitions, want %d",
						n, b, a, got, 2*cycle, want)
				}
			}
		}
	}
}

// TestContenderOrderW1 pins the order of segbench's four contenders of a run with
// --base (ours, PostGraphile, the floor, base) over its first repetitions.
func TestContenderOrderW1(t *testing.T) {
	want := []string{"[0 1 3 2]", "[1 2 0 3]", "[2 3 1 0]", "[3 0 2 1]"}
	for rep, w := range want {
		if got := fmt.Sprint(contenderOrder(4, rep)); got != w {
			t.Errorf("rep %d: %s, want %s", rep, got, w)
		}
	}
}
