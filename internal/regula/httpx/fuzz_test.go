package httpx

import (
	"testing"
	"time"
)

// FuzzParseRetryAfter checks that no header value yields a negative or
// overflowing wait.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "5", "-1", "99999999999999999999", "Tue, 13 Jan 2026 10:01:00 GMT", "Monday, 02-Jan-06 15:04:05 MST"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 13, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now); d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v", v, d)
		}
	})
}
