package ratelimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/idvault/idvault/internal/ratelimit"
)

// Example shows the checks an HTTP middleware makes: the address limit on
// every request, the sign-in limit on sign-in routes before the password
// is checked, and (after authentication, not shown) the principal limit.
// A refused request gets 429 with Retry-After in whole seconds.
func Example() {
	p, err := ratelimit.ProfileByName("s")
	if err != nil {
		panic(err)
	}
	lim, err := ratelimit.New(p)
	if err != nil {
		panic(err)
	}
	proxies, err := ratelimit.ParsePrefixes([]string{"10.0.0.0/8"})
	if err != nil {
		panic(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // time.Now in production

	limit := func(next http.HandlerFunc, signIn bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			key := ratelimit.AddrKey(ratelimit.ClientIP(r, proxies))
			ok, wait := lim.Allow(key, ratelimit.Address, now)
			if ok && signIn {
				ok, wait = lim.Allow(key, ratelimit.SignIn, now)
			}
			if !ok {
				w.Header().Set("Retry-After", strconv.FormatInt(ratelimit.RetryAfterSeconds(wait), 10))
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			next(w, r)
		}
	}
	signIn := limit(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }, true)

	for i := 1; i <= p.SignIn.Burst+1; i++ {
		r := httptest.NewRequest("POST", "/api/v1/auth/token", nil)
		r.RemoteAddr = "10.0.0.2:40000" // the reverse proxy
		r.Header.Set("X-Forwarded-For", "192.0.2.1, 198.51.100.7")
		w := httptest.NewRecorder()
		signIn(w, r)
		if i == 1 || i > p.SignIn.Burst {
			fmt.Printf("attempt %d: %d, Retry-After %q\n", i, w.Code, w.Header().Get("Retry-After"))
		}
	}
	// Output:
	// attempt 1: 401, Retry-After ""
	// attempt 11: 429, Retry-After "10"
}
