package agent

import "testing"

func TestDeliveryAttempts(t *testing.T) {
	for _, tc := range []struct{ set, want int }{{0, 3}, {1, 1}, {2, 2}, {3, 3}, {7, 7}} {
		if got := delivery(&HTTPSink{URL: "http://x", Attempts: tc.set}).Attempts; got != tc.want {
			t.Errorf("attempts: %d gives %d tries, want %d", tc.set, got, tc.want)
		}
	}
}
