package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TestTOTPEnrolment enrols a user through the API and checks that sign-in
// then needs the code; an API key cannot enrol (self routes are for users).
func TestTOTPEnrolment(t *testing.T) {
	h := newHarness(t)
	signIn := func(code string) response {
		return h.do(t, "POST", "/api/v1/auth/token", "", "application/json",
			[]byte(`{"tenantId":"`+h.a.ID+`","username":"admin","password":"`+h.a.Password+`","code":"`+code+`"}`))
	}
	res := signIn("")
	wantStatus(t, res, http.StatusOK)
	var tok struct{ AccessToken string }
	_ = json.Unmarshal(res.body, &tok)
	bearer := "Bearer " + tok.AccessToken

	wantProblem(t, h.do(t, "POST", "/api/v1/auth/totp", h.a.Auth(), "", nil), http.StatusForbidden, "forbidden")
	wantProblem(t, h.do(t, "POST", "/api/v1/auth/totp/confirm", bearer, "application/json", []byte(`{"code":"123456"}`)), http.StatusConflict, "invalid-state")
	res = h.do(t, "POST", "/api/v1/auth/totp", bearer, "", nil)
	wantStatus(t, res, http.StatusOK)
	var e struct{ Secret, OtpauthURL string }
	if err := json.Unmarshal(res.body, &e); err != nil || e.Secret == "" {
		t.Fatalf("enrol = %s, %v", res.body, err)
	}
	code := func(at time.Time) string {
		c, err := totp.GenerateCodeCustom(e.Secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wantProblem(t, h.do(t, "POST", "/api/v1/auth/totp/confirm", bearer, "application/json", []byte(`{"code":"000000"}`)), http.StatusBadRequest, "invalid-request")
	wantStatus(t, h.do(t, "POST", "/api/v1/auth/totp/confirm", bearer, "application/json", []byte(`{"code":"`+code(h.clock.Now())+`"}`)), http.StatusNoContent)
	wantProblem(t, signIn(""), http.StatusUnauthorized, "invalid-credentials")
	h.clock.Advance(30 * time.Second)
	wantStatus(t, signIn(code(h.clock.Now())), http.StatusOK)
}

// TestRequireMFA switches the tenant policy to require a second factor: a
// user without one can sign in, but the credential only enrols a factor
// until the user signs in again with a code.
func TestRequireMFA(t *testing.T) {
	h := newHarness(t)
	wantStatus(t, h.do(t, "PUT", "/api/v1/settings/policy", h.a.Auth(), "application/json", []byte(`{"requireMFA":true}`)), http.StatusOK)
	wantProblem(t, h.do(t, "PUT", "/api/v1/settings/policy", h.a.Auth(), "application/json", []byte(`{}`)), http.StatusBadRequest, "invalid-request")
	signIn := func(code string) string {
		t.Helper()
		res := h.do(t, "POST", "/api/v1/auth/token", "", "application/json",
			[]byte(`{"tenantId":"`+h.a.ID+`","username":"admin","password":"`+h.a.Password+`","code":"`+code+`"}`))
		wantStatus(t, res, http.StatusOK)
		var tok struct{ AccessToken string }
		_ = json.Unmarshal(res.body, &tok)
		return "Bearer " + tok.AccessToken
	}
	limited := signIn("")
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions", limited, "", nil), http.StatusForbidden, "mfa-enrolment-required")
	wantProblem(t, h.do(t, "PUT", "/api/v1/settings/policy", limited, "application/json", []byte(`{"requireMFA":false}`)), http.StatusForbidden, "mfa-enrolment-required")
	res := h.do(t, "POST", "/api/v1/auth/totp", limited, "", nil)
	wantStatus(t, res, http.StatusOK)
	var e struct{ Secret string }
	_ = json.Unmarshal(res.body, &e)
	code := func(at time.Time) string {
		c, _ := totp.GenerateCodeCustom(e.Secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return c
	}
	wantStatus(t, h.do(t, "POST", "/api/v1/auth/totp/confirm", limited, "application/json", []byte(`{"code":"`+code(h.clock.Now())+`"}`)), http.StatusNoContent)
	wantProblem(t, h.do(t, "GET", "/api/v1/sessions", limited, "", nil), http.StatusForbidden, "mfa-enrolment-required")
	h.clock.Advance(30 * time.Second)
	full := signIn(code(h.clock.Now()))
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", full, "", nil), http.StatusOK)
	// API keys are not users: the policy does not limit them.
	wantStatus(t, h.do(t, "GET", "/api/v1/sessions", h.a.Auth(), "", nil), http.StatusOK)
}
