package testpass

import (
	"strings"
	"testing"
	"time"
)

func TestRemaining(t *testing.T) {
	for _, tt := range []struct {
		timeout, elapsed, want time.Duration
		fails                  bool
	}{
		{20 * time.Minute, 0, 20 * time.Minute, false},
		{20 * time.Minute, 12 * time.Minute, 8 * time.Minute, false},
		{20 * time.Minute, 20 * time.Minute, 0, true},
		{20 * time.Minute, 25 * time.Minute, 0, true},
		{0, 25 * time.Minute, 0, false}, // -timeout 0: none
	} {
		got, err := remaining(tt.timeout, tt.elapsed)
		if got != tt.want || (err != nil) != tt.fails {
			t.Errorf("remaining(%v, %v) = %v, %v; want %v, failing %v", tt.timeout, tt.elapsed, got, err, tt.want, tt.fails)
		}
		if err != nil && !strings.Contains(err.Error(), "-timeout "+tt.timeout.String()+" has passed") {
			t.Errorf("remaining(%v, %v): %q does not say -timeout has passed", tt.timeout, tt.elapsed, err)
		}
	}
}
