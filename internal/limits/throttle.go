package limits

import (
	"context"
	"errors"
	"time"
)

// A Throttle rate-limits requests by their cost: each request takes its cost in
// points from a bucket (a token bucket, say, of MaximumAvailable points refilled at
// RestoreRate points a second). Which bucket a request draws from is decided by the
// caller (per workspace, per API key, ...).
//
// Implementations must be safe for concurrent use, and fast: Take runs on every
// request, before it executes.
type Throttle interface {
	// Take takes cost points from bucket. When the bucket holds fewer than cost
	// points, it takes nothing and returns ErrThrottled (possibly wrapped) with the
	// bucket's status. A cost of 0 takes nothing and reports the status. Any other
	// error means the throttle could not be consulted: the request is then served
	// (the per-request MaxCost still holds) and the error logged.
	Take(ctx context.Context, bucket string, cost int) (Status, error)
}

// ErrThrottled is the error of Take when the bucket holds too few points.
var ErrThrottled = errors.New("limits: the bucket holds too few points")

// Status is a bucket's state after a Take, as responses report it in
// extensions.cost.throttleStatus.
type Status struct {
	// MaximumAvailable is the most points the bucket holds.
	MaximumAvailable int `json:"maximumAvailable"`
	// CurrentlyAvailable is the points it holds now.
	CurrentlyAvailable int `json:"currentlyAvailable"`
	// RestoreRate is how many points it regains per second.
	RestoreRate float64 `json:"restoreRate"`
	// Wait, when a Take is refused, is how long until the bucket holds the cost
	// again, if nothing else takes from it (0: compute it from the other fields).
	// Responses show it as the Retry-After header, not in the status.
	Wait time.Duration `json:"-"`
}

// Unlimited is the Throttle that never throttles: its buckets are always full.
// Capacity is what its status reports as MaximumAvailable, CurrentlyAvailable and
// RestoreRate (0: Defaults.MaxCost).
type Unlimited struct{ Capacity int }

// Take reports a full bucket and takes nothing.
func (u Unlimited) Take(context.Context, string, int) (Status, error) {
	c := u.Capacity
	if c <= 0 {
		c = Defaults.MaxCost
	}
	return Status{MaximumAvailable: c, CurrentlyAvailable: c, RestoreRate: float64(c)}, nil
}

// Report is what every costed response carries as extensions.cost.
type Report struct {
	// RequestedQueryCost is the cost of the operation (see Cost), computed before it
	// ran, and at least 1: every request is charged.
	RequestedQueryCost int `json:"requestedQueryCost"`
	// ActualQueryCost is what the request was charged: the requested cost when it
	// ran (pages shorter than requested are not refunded), 1 when it was refused for
	// its cost, 0 when it was throttled.
	ActualQueryCost int `json:"actualQueryCost"`
	// ThrottleStatus is the bucket's state after the charge; null when the throttle
	// could not answer.
	ThrottleStatus *Status `json:"throttleStatus"`
}
