package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/store"
)

// TestSignInLockout tries a password guessing run: after
// identity.LockoutThreshold failures the username is locked (429 with
// Retry-After, audited), even the right password is refused while locked,
// an unknown username locks exactly the same way, and the lock lifts when
// its time is up.
func TestSignInLockout(t *testing.T) {
	h := newHarness(t)
	token := func(user, pw string) response {
		return h.do(t, "POST", "/api/v1/auth/token", "", "application/json",
			[]byte(`{"tenantId":"`+h.a.ID+`","username":"`+user+`","password":"`+pw+`"}`))
	}
	for _, user := range []string{h.a.Username, "nobody-here"} {
		t.Run(user, func(t *testing.T) {
			for i := 1; i < identity.LockoutThreshold; i++ {
				wantProblem(t, token(user, "wrong-password-"+strconv.Itoa(i)), http.StatusUnauthorized, "invalid-credentials")
			}
			res := token(user, "wrong-password-last")
			wantProblem(t, res, http.StatusTooManyRequests, "signin-locked")
			retry, err := strconv.Atoi(res.header.Get("Retry-After"))
			if err != nil || retry < 1 || retry > int(identity.LockoutBase/time.Second)+1 {
				t.Errorf("Retry-After = %q, want 1..%d seconds", res.header.Get("Retry-After"), int(identity.LockoutBase/time.Second)+1)
			}
			h.auditEvent(t, store.PlatformTenant, res.header.Get("X-Request-Id"), "auth.lockout")
			wantProblem(t, token(user, h.a.Password), http.StatusTooManyRequests, "signin-locked")
			h.clock.Advance(identity.LockoutBase + time.Second)
			if user == h.a.Username {
				wantStatus(t, token(user, h.a.Password), http.StatusOK)
				wantProblem(t, token(user, "wrong-again"), http.StatusUnauthorized, "invalid-credentials")
			} else {
				// A further failure after the lock locks again, for longer.
				res := token(user, "still-wrong")
				wantProblem(t, res, http.StatusTooManyRequests, "signin-locked")
				if retry, _ := strconv.Atoi(res.header.Get("Retry-After")); retry <= int(identity.LockoutBase/time.Second) {
					t.Errorf("second lock Retry-After = %d s, want longer than the first", retry)
				}
			}
		})
	}
}
