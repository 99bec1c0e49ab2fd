package limits_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/segments/segments/internal/limits"
)

// TestUnlimited proves that the default throttle never refuses and reports a full
// bucket of its capacity (MaxCost's default without one).
func TestUnlimited(t *testing.T) {
	for _, tc := range []struct {
		u    limits.Unlimited
		want int
	}{{limits.Unlimited{}, limits.Defaults.MaxCost}, {limits.Unlimited{Capacity: 7}, 7}} {
		st, err := tc.u.Take(context.Background(), "any", 1<<30)
		if err != nil || st != (limits.Status{MaximumAvailable: tc.want, CurrentlyAvailable: tc.want, RestoreRate: float64(tc.want)}) {
			t.Errorf("%+v: %+v %v", tc.u, st, err)
		}
	}
}

// TestStatusJSON proves that throttleStatus shows Shopify's three fields and not the
// wait, which responses give as Retry-After.
func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal(limits.Status{MaximumAvailable: 1000, CurrentlyAvailable: 12, RestoreRate: 50, Wait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"maximumAvailable":1000,"currentlyAvailable":12,"restoreRate":50}`; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}
