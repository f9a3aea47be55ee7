package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/webhook"
)

// TestSignMatchesSpec checks Sign against HMAC-SHA256 computed here from
// the documented recipe, so the wire format cannot drift.
func TestSignMatchesSpec(t *testing.T) {
	secret := []byte("whsec_test")
	body := []byte(`{"id":"evt_1"}`)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1700000000." + string(body)))
	want := hex.EncodeToString(m.Sum(nil))
	if got := webhook.Sign(secret, 1700000000, body); got != want {
		t.Errorf("Sign() = %s, want %s", got, want)
	}
	h := webhook.SignatureHeader(time.Unix(1700000000, 0), body, secret, []byte("old"))
	if wantH := "t=1700000000,v1=" + want + ",v1=" + webhook.Sign([]byte("old"), 1700000000, body); h != wantH {
		t.Errorf("SignatureHeader() = %s, want %s", h, wantH)
	}
}

// TestVerify attacks Verify: forged, tampered, replayed, future-dated and
// malformed signatures must all fail, with the error that says why.
func TestVerify(t *testing.T) {
	secret := []byte("whsec_current")
	old := []byte("whsec_previous")
	body := []byte(`{"id":"evt_1","type":"session.created"}`)
	now := time.Unix(1700000000, 0)
	ts := now.Unix()
	good := webhook.SignatureHeader(now, body, secret)
	sig := webhook.Sign(secret, ts, body)
	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, good, body, now, nil},
		{"valid with spaces", secret, "t=" + strconv.FormatInt(ts, 10) + ", v1=" + sig, body, now, nil},
		{"rotation: current secret", secret, webhook.SignatureHeader(now, body, secret, old), body, now, nil},
		{"rotation: previous secret", old, webhook.SignatureHeader(now, body, secret, old), body, now, nil},
		{"unknown scheme ignored", secret, "t=" + strconv.FormatInt(ts, 10) + ",v0=abc,v1=" + sig, body, now, nil},
		{"clock 5 min behind", secret, good, body, now.Add(-5 * time.Minute), nil},
		{"clock 5 min ahead", secret, good, body, now.Add(5 * time.Minute), nil},
		{"forged: wrong secret", []byte("whsec_guess"), good, body, now, webhook.ErrSignatureMismatch},
		{"forged: previous secret revoked", old, good, body, now, webhook.ErrSignatureMismatch},
		{"tampered body", secret, good, []byte(`{"id":"evt_1","type":"session.completed"}`), now, webhook.ErrSignatureMismatch},
		{"body with trailing newline", secret, good, append(append([]byte{}, body...), '\n'), now, webhook.ErrSignatureMismatch},
		{"timestamp moved, signature kept", secret, "t=" + strconv.FormatInt(ts+60, 10) + ",v1=" + sig, body, now, webhook.ErrSignatureMismatch},
		{"replay after 6 min", secret, good, body, now.Add(6 * time.Minute), webhook.ErrSignatureTimestamp},
		{"future-dated by 6 min", secret, good, body, now.Add(-6 * time.Minute), webhook.ErrSignatureTimestamp},
		{"empty", secret, "", body, now, webhook.ErrSignatureFormat},
		{"no timestamp", secret, "v1=" + sig, body, now, webhook.ErrSignatureFormat},
		{"no signature", secret, "t=" + strconv.FormatInt(ts, 10), body, now, webhook.ErrSignatureFormat},
		{"two timestamps", secret, "t=1,t=" + strconv.FormatInt(ts, 10) + ",v1=" + sig, body, now, webhook.ErrSignatureFormat},
		{"timestamp not decimal", secret, "t=0x10,v1=" + sig, body, now, webhook.ErrSignatureFormat},
		{"timestamp with sign", secret, "t=+" + strconv.FormatInt(ts, 10) + ",v1=" + sig, body, now, webhook.ErrSignatureFormat},
		{"timestamp negative", secret, "t=-1,v1=" + sig, body, now, webhook.ErrSignatureFormat},
		{"signature not hex", secret, "t=" + strconv.FormatInt(ts, 10) + ",v1=zz", body, now, webhook.ErrSignatureFormat},
		{"signature truncated", secret, "t=" + strconv.FormatInt(ts, 10) + ",v1=" + sig[:32], body, now, webhook.ErrSignatureFormat},
		{"field without =", secret, good + ",junk", body, now, webhook.ErrSignatureFormat},
		{"too many signatures", secret, "t=" + strconv.FormatInt(ts, 10) + strings.Repeat(",v1="+sig, 9), body, now, webhook.ErrSignatureFormat},
		{"header too long", secret, good + ",x=" + strings.Repeat("a", 5000), body, now, webhook.ErrSignatureFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(tt.secret, tt.header, tt.body, tt.now, webhook.DefaultTolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}

// TestVerifyDefaultTolerance checks that a tolerance of zero means five
// minutes, not "any age".
func TestVerifyDefaultTolerance(t *testing.T) {
	secret, body := []byte("k"), []byte("{}")
	now := time.Unix(1700000000, 0)
	h := webhook.SignatureHeader(now, body, secret)
	if err := webhook.Verify(secret, h, body, now.Add(4*time.Minute), 0); err != nil {
		t.Errorf("Verify(age 4m, tolerance 0) = %v, want nil", err)
	}
	if err := webhook.Verify(secret, h, body, now.Add(time.Hour), 0); !errors.Is(err, webhook.ErrSignatureTimestamp) {
		t.Errorf("Verify(age 1h, tolerance 0) = %v, want ErrSignatureTimestamp", err)
	}
}

// FuzzVerify checks that Verify never panics and never accepts a header
// that lacks the true signature of the body under the secret.
func FuzzVerify(f *testing.F) {
	secret := []byte("whsec_fuzz")
	now := time.Unix(1700000000, 0)
	f.Add(webhook.SignatureHeader(now, []byte("{}"), secret), []byte("{}"))
	f.Add("t=1700000000,v1=00", []byte("x"))
	f.Add("t=1700000000,v1="+strings.Repeat("ab", 32)+",v1=", []byte(""))
	f.Add(",,,=,t=,v1", []byte("body"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := webhook.Verify(secret, header, body, now, webhook.DefaultTolerance)
		if err != nil {
			return
		}
		for _, f := range strings.Split(header, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			if k != "t" {
				continue
			}
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr == nil && strings.Contains(header, webhook.Sign(secret, n, body)) {
				return
			}
		}
		t.Fatalf("Verify accepted %q for body %q without its signature", header, body)
	})
}

// Example shows a receiver checking a delivery.
func ExampleVerify() {
	secret := []byte("whsec_example") // the value shown once at creation
	body := []byte(`{"id":"evt_1","type":"session.completed"}`)
	sent := time.Unix(1700000000, 0)
	header := webhook.SignatureHeader(sent, body, secret) // what idvault sends

	err := webhook.Verify(secret, header, body, sent.Add(30*time.Second), webhook.DefaultTolerance)
	fmt.Println(err)
	err = webhook.Verify(secret, header, body, sent.Add(time.Hour), webhook.DefaultTolerance)
	fmt.Println(err)
	// Output:
	// <nil>
	// webhook: signature timestamp outside tolerance
}
