package httpapi_test

import (
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
)

// quarantineDoc is the quarantined member of a file as the API returns it.
type quarantineDoc struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// quarantinedSessionDoc is a session as the API returns it, with only what
// these tests look at: each file's id and quarantine.
type quarantinedSessionDoc struct {
	Files []struct {
		ID          string         `json:"id"`
		Quarantined *quarantineDoc `json:"quarantined"`
	} `json:"files"`
}

// quarantineOf returns the quarantine the API shows for file fileID of
// session id of tenant a, nil when it shows none.
func (h *harness) quarantineOf(t *testing.T, id, fileID string) *quarantineDoc {
	t.Helper()
	res := h.do(t, "GET", "/api/v1/sessions/"+id, h.a.Auth(), "", nil)
	wantStatus(t, res, http.StatusOK)
	doc := decodeJSON[quarantinedSessionDoc](t, res)
	raw := decodeJSON[struct {
		Files []map[string]any `json:"files"`
	}](t, res)
	for i, f := range doc.Files {
		if f.ID != fileID {
			continue
		}
		if q, ok := raw.Files[i]["quarantined"].(map[string]any); ok {
			var keys []string
			for k := range q {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, []string{"at", "reason"}) {
				t.Errorf("file %s quarantined members = %q, want [at reason]", fileID, keys)
			}
		}
		return f.Quarantined
	}
	t.Fatalf("GET session %s lists no file %s", id, fileID)
	return nil
}

// storedSession reads session id of tenant a straight from the store.
func (h *harness) storedSession(t *testing.T, id string) *session.Session {
	t.Helper()
	v, err := store.NewView(h.backend, h.barrier, h.a.ID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.NewRepo(v).Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s) = %v, want nil", id, err)
	}
	return s
}

// TestQuarantineStaysRefused tampers with a stored object: the download that
// finds it quarantines the file, and every later download is refused at once,
// without reading the object, even after the original bytes are back or the
// object is gone.
func TestQuarantineStaysRefused(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	f := h.upload(t, h.a, s.ID, "document_front", "image/png", testPNG(t, 8, 8))
	other := testPNG(t, 8, 8)
	fOther := h.upload(t, h.a, s.ID, "selfie", "image/png", other)
	path := "/api/v1/sessions/" + s.ID + "/files/" + f.ID
	objPath := h.objectPath(h.a, f.ID)
	original, err := os.ReadFile(objPath)
	if err != nil {
		t.Fatalf("read stored object = %v, want nil", err)
	}
	if q := h.quarantineOf(t, s.ID, f.ID); q != nil {
		t.Fatalf("fresh file quarantined = %+v, want none", q)
	}

	flip(t, objPath, func(n int) int { return n / 2 })
	h.clock.Advance(time.Minute)
	found := h.clock.Now()
	res := h.do(t, "GET", path, h.a.Auth(), "", nil)
	first := wantProblem(t, res, http.StatusConflict, "file-tampered")
	firstBody := withoutIDs(t, res.body)
	ev := h.auditEvent(t, h.a.ID, first.RequestID, "file.tamper_detected")
	if ev.Outcome != "denied" || ev.Reason != string(session.ReasonVerificationFailed) || ev.Resource.ID != f.ID ||
		ev.Details["session"] != s.ID || ev.Details["by"] != session.ByDownload {
		t.Errorf("tamper audit event = %+v, want denied, %q, file %s, session %s, by download", ev, session.ReasonVerificationFailed, f.ID, s.ID)
	}

	t.Run("session shows the quarantine", func(t *testing.T) {
		q := h.quarantineOf(t, s.ID, f.ID)
		if q == nil || !q.At.Equal(found) || q.Reason != string(session.ReasonVerificationFailed) {
			t.Errorf("quarantined = %+v, want at %v, reason %q", q, found, session.ReasonVerificationFailed)
		}
		if q := h.quarantineOf(t, s.ID, fOther.ID); q != nil {
			t.Errorf("untouched file quarantined = %+v, want none", q)
		}
		stored, _ := h.storedSession(t, s.ID).File(f.ID)
		if q := stored.Quarantined; q == nil || q.By != session.ByDownload {
			t.Errorf("stored quarantine = %+v, want one by %q", q, session.ByDownload)
		}
	})

	// Each case leaves the object in a state a fresh read would answer
	// differently (intact, missing); a quarantined file is refused the same
	// way regardless, and the refusal writes nothing.
	tests := []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"original bytes restored", func(t *testing.T) {
			if err := os.WriteFile(objPath, original, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"object deleted", func(t *testing.T) {
			if err := os.Remove(objPath); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			before := h.snapshot(t)
			h.clock.Advance(time.Minute)
			for _, method := range []string{"GET", "HEAD"} {
				res := h.do(t, method, path, h.a.Auth(), "", nil)
				wantStatus(t, res, http.StatusConflict)
				if method == "HEAD" {
					continue
				}
				p := wantProblem(t, res, http.StatusConflict, "file-tampered")
				if got := withoutIDs(t, res.body); got != firstBody {
					t.Errorf("refusal of a quarantined file = %s, want the first refusal %s", got, firstBody)
				}
				ev := h.auditEvent(t, h.a.ID, p.RequestID, "file.read")
				if ev.Outcome != "denied" || ev.Reason != "quarantined" || ev.Resource.ID != f.ID || ev.Details["session"] != s.ID {
					t.Errorf("audit event = %+v, want a denied file.read of %s, reason quarantined", ev, f.ID)
				}
			}
			h.unchanged(t, before)
			if q := h.quarantineOf(t, s.ID, f.ID); q == nil || !q.At.Equal(found) || q.Reason != string(session.ReasonVerificationFailed) {
				t.Errorf("quarantined = %+v, want the first quarantine at %v kept", q, found)
			}
		})
	}

	t.Run("no new tamper event", func(t *testing.T) {
		var n int
		for _, ev := range h.auditEvents(t, h.a.ID) {
			if ev.Action == "file.tamper_detected" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("file.tamper_detected events = %d, want 1 (later refusals are file.read)", n)
		}
	})

	t.Run("other file still served", func(t *testing.T) {
		res := h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+fOther.ID, h.a.Auth(), "", nil)
		wantStatus(t, res, http.StatusOK)
		if string(res.body) != string(other) {
			t.Errorf("download of the untouched file = %d bytes, want the %d uploaded", len(res.body), len(other))
		}
	})
}

// TestQuarantineMissingObject removes a stored object: the download
// quarantines the file as missing.
func TestQuarantineMissingObject(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	f := h.upload(t, h.a, s.ID, "selfie", "image/png", testPNG(t, 8, 8))
	if err := os.Remove(h.objectPath(h.a, f.ID)); err != nil {
		t.Fatal(err)
	}
	res := h.do(t, "GET", "/api/v1/sessions/"+s.ID+"/files/"+f.ID, h.a.Auth(), "", nil)
	p := wantProblem(t, res, http.StatusConflict, "file-tampered")
	ev := h.auditEvent(t, h.a.ID, p.RequestID, "file.tamper_detected")
	if ev.Reason != string(session.ReasonObjectMissing) || ev.Resource.ID != f.ID {
		t.Errorf("audit event = %+v, want reason %q for file %s", ev, session.ReasonObjectMissing, f.ID)
	}
	if q := h.quarantineOf(t, s.ID, f.ID); q == nil || q.Reason != string(session.ReasonObjectMissing) || !q.At.Equal(h.clock.Now()) {
		t.Errorf("quarantined = %+v, want reason %q at %v", q, session.ReasonObjectMissing, h.clock.Now())
	}
}

// TestQuarantineConcurrent downloads a tampered file from several clients at
// once: every one is refused and the file is quarantined by one write.
func TestQuarantineConcurrent(t *testing.T) {
	h := newHarness(t)
	s := h.createSession(t, h.a, `{}`)
	f := h.upload(t, h.a, s.ID, "selfie", "image/png", testPNG(t, 8, 8))
	flip(t, h.objectPath(h.a, f.ID), func(int) int { return 0 })
	version := h.storedSession(t, s.ID).Version()

	const clients = 4
	statuses := make([]int, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			res, err := h.try(t.Context(), request{method: "GET", path: "/api/v1/sessions/" + s.ID + "/files/" + f.ID, auth: h.a.Auth()})
			statuses[i], errs[i] = res.status, err
		})
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || statuses[i] != http.StatusConflict {
			t.Errorf("client %d: status %d, %v; want 409", i, statuses[i], errs[i])
		}
	}
	stored := h.storedSession(t, s.ID)
	if got := stored.Version(); got != version+1 {
		t.Errorf("session version after %d concurrent refusals = %d, want %d (one quarantine write)", clients, got, version+1)
	}
	if sf, _ := stored.File(f.ID); sf.Quarantined == nil {
		t.Errorf("file not quarantined after %d concurrent refusals", clients)
	}
}
