package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestAuditMarkers runs a flow carrying known personal data (session
// metadata, a username, a User-Agent, a stated purpose of access, an unknown
// username tried at sign-in) and secrets (an admin-entered secret, a scoped
// API key, a one-time password, a bearer token, a wrong password, a forged
// API key), then checks where they went:
//   - the process's stdout and stderr hold none of them (the once-printed
//     initial credentials apart);
//   - no audit event holds a secret, and no audit event field other than
//     the sealed personal ones (actor address and user agent, purpose)
//     holds personal data;
//   - the stated purpose and the user agent are recorded in the events of
//     the reads that carried them;
//   - no file of the data directory holds any of them in clear, and no clear
//     index field or record id of the store does.
func TestAuditMarkers(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	creds, ok := s.credentials()
	if !ok {
		t.Fatalf("first start printed no credentials; stdout:\n%s", s.stdout.text())
	}
	ctx := t.Context()
	r := newRand(t)
	mark := func(what string) string { return fmt.Sprintf("e2e-%s-%016x", what, r.Uint64()) }
	personal := map[string]string{
		"session metadata": mark("meta"),
		"username":         mark("user"),
		"user agent":       mark("agent"),
		"stated purpose":   mark("purpose"),
		"unknown username": mark("nobody"),
	}
	secrets := map[string]string{
		"admin-entered secret": mark("secret"),
		"wrong password":       mark("wrongpw"),
		"forged API key":       mark("forged"),
	}
	s.header = http.Header{"User-Agent": {personal["user agent"]}, "X-Access-Purpose": {personal["stated purpose"]}}
	asJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	jsonHeader := func(auth string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		return h
	}

	// As the admin: a secret, a scoped API key and a user.
	if _, _, err := s.call(ctx, "PUT", "/api/v1/settings/secrets/e2e-marker", "application/json",
		asJSON(map[string]string{"value": secrets["admin-entered secret"]}), http.StatusNoContent); err != nil {
		t.Fatal(err)
	}
	var key struct{ Key string }
	if err := s.callJSON(ctx, "POST", "/api/v1/api-keys", "application/json", asJSON(map[string]any{
		"name": "e2e marker key", "permissions": []string{"session:read", "session:write", "file:read", "file:write"},
	}), http.StatusCreated, &key); err != nil {
		t.Fatal(err)
	}
	var user struct{ ID, Password string }
	if err := s.callJSON(ctx, "POST", "/api/v1/users", "application/json", asJSON(map[string]any{
		"username": personal["username"], "roles": []string{"verifier"},
	}), http.StatusCreated, &user); err != nil {
		t.Fatal(err)
	}
	if key.Key == "" || user.Password == "" {
		t.Fatalf("created API key %q, user password %q; want both", key.Key, user.Password)
	}
	secrets["scoped API key"], secrets["one-time password"] = key.Key, user.Password

	// With the scoped key: a session with personal metadata and a file,
	// read back with the stated purpose. reads maps each read's request id
	// to its action.
	s.apiKey = key.Key
	sess, err := s.createSession(ctx, `{"metadata":{"customerRef":"`+personal["session metadata"]+`"}}`)
	if err != nil {
		t.Fatal(err)
	}
	doc := encodeJPEG(t, noise(r, 64, 48))
	f, err := s.upload(ctx, sess.ID, "document_front", "image/jpeg", doc)
	if err != nil {
		t.Fatal(err)
	}
	reads := map[string]string{}
	read := func(auth, path, action string) {
		t.Helper()
		h := http.Header{"Authorization": {auth}}
		if _, rh, err := s.send(ctx, "GET", path, h, nil, http.StatusOK); err != nil {
			t.Fatal(err)
		} else {
			reads[rh.Get("X-Request-Id")] = action
		}
	}
	read("ApiKey "+key.Key, "/api/v1/sessions/"+sess.ID, "session.read")
	read("ApiKey "+key.Key, "/api/v1/sessions/"+sess.ID+"/files/"+f.ID, "file.read")
	read("ApiKey "+key.Key, "/api/v1/sessions?limit=10", "session.list")

	// As the new user, with a bearer token from its one-time password.
	var tok struct{ AccessToken string }
	body, _, err := s.send(ctx, "POST", "/api/v1/auth/token", jsonHeader(""), asJSON(map[string]string{
		"tenantId": creds.TenantID, "username": personal["username"], "password": user.Password,
	}), http.StatusOK)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response %s: %v; want an access token", body, err)
	}
	secrets["bearer token"] = tok.AccessToken
	read("Bearer "+tok.AccessToken, "/api/v1/sessions/"+sess.ID, "session.read")

	// Refusals that carry personal data or secrets.
	for _, body := range []map[string]string{
		{"tenantId": creds.TenantID, "username": personal["unknown username"], "password": secrets["wrong password"]},
		{"tenantId": creds.TenantID, "username": personal["username"], "password": secrets["wrong password"]},
	} {
		if _, _, err := s.send(ctx, "POST", "/api/v1/auth/token", jsonHeader(""), asJSON(body), http.StatusUnauthorized); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.send(ctx, "GET", "/api/v1/sessions", http.Header{"Authorization": {"ApiKey " + secrets["forged API key"]}}, nil, http.StatusUnauthorized); err != nil {
		t.Fatal(err)
	}

	waitAuditDrained(t, dir)
	s.stop()

	all := maps.Clone(personal)
	maps.Copy(all, secrets)
	t.Run("process output", func(t *testing.T) {
		initial := map[string]string{"initial API key": creds.APIKey, "initial admin password": creds.AdminPassword}
		stdout := s.stdout.text()
		for name, v := range initial {
			if n := strings.Count(stdout, v); n != 1 {
				t.Errorf("stdout holds the %s %d times, want once (the credentials printed at the first start)", name, n)
			}
		}
		var rest []string
		for _, line := range s.stdout.snapshot() {
			if !slices.ContainsFunc(slices.Collect(maps.Values(initial)), func(v string) bool { return strings.Contains(line, v) }) {
				rest = append(rest, line)
			}
		}
		outputs := map[string]string{"stdout (credentials apart)": strings.Join(rest, "\n"), "stderr": s.stderr.text()}
		for stream, out := range outputs {
			for name, v := range all {
				if strings.Contains(out, v) {
					t.Errorf("%s holds the %s", stream, name)
				}
			}
			for name, v := range initial {
				if strings.Contains(out, v) {
					t.Errorf("%s holds the %s", stream, name)
				}
			}
		}
		if n := len(s.stderr.snapshot()); n < 10 {
			t.Errorf("stderr holds %d lines, want the request log of the flow", n)
		}
	})

	events := readAuditLogs(t, dir)
	t.Run("audit events", func(t *testing.T) {
		actions := map[string]int{}
		for _, e := range events {
			actions[e.ev.Action]++
			whole, err := json.Marshal(e.ev)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range secrets {
				if strings.Contains(string(whole), v) {
					t.Errorf("event %s (%s) holds the %s", e.ev.ID, e.ev.Action, name)
				}
			}
			clear := e.ev
			clear.Actor.Address, clear.Actor.UserAgent, clear.Purpose = "", "", ""
			open, err := json.Marshal(clear)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range personal {
				if strings.Contains(string(open), v) {
					t.Errorf("event %s (%s) holds the %s outside its sealed personal fields: %s", e.ev.ID, e.ev.Action, name, open)
				}
			}
		}
		for action, want := range map[string]int{
			"secret.write": 1, "apikey.create": 1, "user.create": 1, "session.create": 1, "file.upload": 1,
			"session.read": 2, "file.read": 1, "session.list": 1, "auth.token": 1, "auth.failure": 3,
		} {
			if actions[action] != want {
				t.Errorf("the logs hold %d %s events, want %d", actions[action], action, want)
			}
		}
		for id, action := range reads {
			i := slices.IndexFunc(events, func(e loggedEvent) bool { return e.ev.RequestID == id })
			if i < 0 {
				t.Errorf("no event of the %s with request id %s", action, id)
				continue
			}
			ev := events[i].ev
			if ev.Action != action || ev.Purpose != personal["stated purpose"] ||
				ev.Actor.UserAgent.Value() != personal["user agent"] || ev.Actor.Address.Value() == "" {
				t.Errorf("event of request %s = %s, purpose %q, user agent %q, address %q; want %s, the stated purpose, the User-Agent and an address",
					id, ev.Action, ev.Purpose, ev.Actor.UserAgent.Value(), ev.Actor.Address.Value(), action)
			}
		}
	})
	t.Run("data dir", func(t *testing.T) {
		needles := map[string][]byte{}
		for name, v := range all {
			needles[name] = []byte(v)
		}
		scanDataDir(t, dir, needles)
		db := openReadOnly(t, dir)
		defer db.Close()
		for name, v := range all {
			var n int
			err := db.QueryRowContext(ctx, `SELECT
				(SELECT count(*) FROM store_index WHERE instr(value, ?1) > 0 OR instr(field, ?1) > 0) +
				(SELECT count(*) FROM store_records WHERE instr(id, ?1) > 0 OR instr(tenant, ?1) > 0 OR instr(collection, ?1) > 0)`, v).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				t.Errorf("%d clear index fields or record keys of the store hold the %s", n, name)
			}
		}
	})
}
