package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex>[,v1=<hex>]".
	HeaderSignature = "Idvault-Signature"
	// HeaderEventID carries the event id (the payload's "id").
	HeaderEventID = "Idvault-Event-Id"
	// HeaderEventType carries the event type (the payload's "type").
	HeaderEventType = "Idvault-Event-Type"
	// HeaderDeliveryID names the delivery (one event to one subscription),
	// as the delivery log shows it.
	HeaderDeliveryID = "Idvault-Delivery-Id"
)

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock, either way, before Verify refuses it as a replay.
const DefaultTolerance = 5 * time.Minute

// Limits Verify enforces before it computes anything.
const (
	maxHeaderLen  = 4096
	maxSignatures = 8
)

// Errors of Verify. Check them with errors.Is.
var (
	// ErrSignatureFormat means the header is not "t=<unix>,v1=<hex>...".
	ErrSignatureFormat = errors.New("webhook: malformed signature header")
	// ErrSignatureTimestamp means the timestamp is outside the tolerance:
	// a replayed or delayed message, or a clock that is far off.
	ErrSignatureTimestamp = errors.New("webhook: signature timestamp outside tolerance")
	// ErrSignatureMismatch means no v1 signature matches the body under
	// the secret.
	ErrSignatureMismatch = errors.New("webhook: signature mismatch")
)

// Sign returns the hex HMAC-SHA256, under secret, of the decimal unix
// timestamp t, a full stop, and body: the v1 signature.
func Sign(secret []byte, t int64, body []byte) string {
	return hex.EncodeToString(mac(secret, t, body))
}

func mac(secret []byte, t int64, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	var buf [20]byte
	h.Write(strconv.AppendInt(buf[:0], t, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// SignatureHeader returns the Idvault-Signature value for body sent at t:
// the timestamp and one v1 signature for each secret, in order.
func SignatureHeader(t time.Time, body []byte, secrets ...[]byte) string {
	unix := t.Unix()
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(unix, 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(Sign(s, unix, body))
	}
	return b.String()
}

// Verify checks a delivery on the receiver's side: header is the
// Idvault-Signature value, body the raw request body (before any JSON
// decoding), now the receiver's clock. It succeeds when the timestamp is
// within tolerance of now (tolerance <= 0 means DefaultTolerance) and some
// v1 signature equals Sign(secret, t, body), compared in constant time.
// Unknown schemes (anything but t and v1) are ignored, so a header may
// carry future signature versions. Verify is the reference for receivers;
// docs/webhooks.md shows it in use.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if len(header) > maxHeaderLen {
		return ErrSignatureFormat
	}
	var (
		t      int64
		haveT  bool
		sigs   [][]byte
		fields = strings.Split(header, ",")
	)
	for _, f := range fields {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return ErrSignatureFormat
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if haveT || err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
				return ErrSignatureFormat
			}
			t, haveT = n, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size || len(sigs) == maxSignatures {
				return ErrSignatureFormat
			}
			sigs = append(sigs, sig)
		}
	}
	if !haveT || len(sigs) == 0 {
		return ErrSignatureFormat
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureTimestamp
	}
	want := mac(secret, t, body)
	ok := 0
	for _, sig := range sigs {
		ok |= boolInt(hmac.Equal(sig, want))
	}
	if ok == 0 {
		return ErrSignatureMismatch
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
