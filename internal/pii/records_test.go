package pii_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/pii"
	"github.com/idvault/idvault/internal/session"
)

// TestRecordsLogSafely logs whole records that hold personal data — a user,
// a session with metadata, an audit event with an address and user agent —
// the ways a careless log line would, and checks that none of it appears.
func TestRecordsLogSafely(t *testing.T) {
	u := identity.User{ID: "u1", Username: pii.String(marker + "@example.com"), PasswordHash: "$argon2id$" + marker, Roles: []string{"admin"}}
	s := &session.Session{ID: "s1", Status: session.StatusPending, Metadata: pii.JSON(`{"name":"` + marker + `"}`)}
	ev := audit.Event{ID: "e1", Tenant: "t1", Action: "session.read",
		Actor: audit.Actor{Type: "user", ID: "u1", Address: pii.String("203.0.113." + marker), UserAgent: pii.String(marker + "-agent")}}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("user", "user", u, "ptr", &u)
		l.Info("session", "session", s)
		l.Info("event", "event", ev, "actor.address", ev.Actor.Address)
		l.Info("errors", "err", fmt.Errorf("sign-in of %v failed", u.Username))
	}
	if bytes.Contains(buf.Bytes(), []byte(marker)) {
		t.Errorf("logs hold personal data or a credential:\n%s", buf.Bytes())
	}
	for _, want := range []string{"u1", "s1", "e1", "session.read"} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("logs do not name %q: the safe fields must stay", want)
		}
	}
}
