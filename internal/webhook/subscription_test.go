package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
)

// TestSubscriptionLifecycle runs create, get, list, update and delete, and
// checks validation and that the secret appears only in Create's result.
func TestSubscriptionLifecycle(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	ctx := context.Background()
	sub, sec := f.create(t, "acme", "https://127.0.0.1:8443/hooks", webhook.EventSessionCompleted, webhook.EventSessionCreated, webhook.EventSessionCreated)
	if !bytes.HasPrefix(sec, []byte(webhook.SecretPrefix)) {
		t.Errorf("secret %q lacks prefix %q", "…", webhook.SecretPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(string(sec), webhook.SecretPrefix))
	if err != nil || len(raw) != 32 {
		t.Errorf("secret body decodes to %d bytes, %v; want 32 random bytes", len(raw), err)
	}
	if want := []webhook.EventType{webhook.EventSessionCreated, webhook.EventSessionCompleted}; !slices.Equal(sub.EventTypes, want) {
		t.Errorf("EventTypes = %v, want %v (deduplicated, canonical order)", sub.EventTypes, want)
	}
	if !sub.Active || !sub.CreatedAt.Equal(start) {
		t.Errorf("new subscription = %+v, want active, created at %v", sub, start)
	}

	got, err := f.svc.Get(ctx, "acme", sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != sub.URL || !slices.Equal(got.EventTypes, sub.EventTypes) {
		t.Errorf("Get() = %+v, want %+v", got, sub)
	}

	f.clock.Advance(time.Minute)
	url := "https://127.0.0.1:9000/v2"
	off := false
	upd, err := f.svc.Update(ctx, "acme", sub.ID, webhook.Changes{URL: &url, EventTypes: []webhook.EventType{webhook.EventReviewRequired}, Active: &off})
	if err != nil {
		t.Fatal(err)
	}
	if upd.URL != url || upd.Active || !slices.Equal(upd.EventTypes, []webhook.EventType{webhook.EventReviewRequired}) || !upd.UpdatedAt.Equal(start.Add(time.Minute)) {
		t.Errorf("Update() = %+v", upd)
	}
	on := true
	if upd, err = f.svc.Update(ctx, "acme", sub.ID, webhook.Changes{Active: &on}); err != nil || !upd.Active || upd.URL != url {
		t.Errorf("Update(active) = %+v, %v; other fields must stay", upd, err)
	}

	bad := []struct {
		name string
		err  func() error
	}{
		{"no event types", func() error {
			_, _, err := f.svc.Create(ctx, "acme", webhook.Params{URL: "https://127.0.0.1/x"})
			return err
		}},
		{"unknown event type", func() error {
			_, _, err := f.svc.Create(ctx, "acme", webhook.Params{URL: "https://127.0.0.1/x", EventTypes: []webhook.EventType{"session.deleted"}})
			return err
		}},
		{"update to internal url", func() error {
			u := "https://10.0.0.1/x"
			_, err := f.svc.Update(ctx, "acme", sub.ID, webhook.Changes{URL: &u})
			return err
		}},
		{"update to empty event types", func() error {
			_, err := f.svc.Update(ctx, "acme", sub.ID, webhook.Changes{EventTypes: []webhook.EventType{}})
			return err
		}},
		{"grace too long", func() error {
			_, _, err := f.svc.RotateSecret(ctx, "acme", sub.ID, webhook.MaxSecretGrace+time.Second)
			return err
		}},
		{"negative grace", func() error {
			_, _, err := f.svc.RotateSecret(ctx, "acme", sub.ID, -time.Second)
			return err
		}},
	}
	for _, b := range bad {
		if err := b.err(); !errors.Is(err, webhook.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", b.name, err)
		}
	}
	if got, _ := f.svc.Get(ctx, "acme", sub.ID); got.URL != url {
		t.Errorf("a refused update changed the URL to %q", got.URL)
	}

	if err := f.svc.Delete(ctx, "acme", sub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Get(ctx, "acme", sub.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrNotFound", err)
	}
	if err := f.svc.Delete(ctx, "acme", sub.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete(deleted) = %v, want ErrNotFound", err)
	}
	if secrets, err := f.keys.Secrets(ctx, "acme"); err != nil || len(secrets) != 0 {
		t.Errorf("keyring after delete = %v, %v; want the signing secret gone", secrets, err)
	}
}

// TestMaxSubscriptions checks the per-tenant cap.
func TestMaxSubscriptions(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	for i := range webhook.MaxSubscriptions {
		f.create(t, "acme", fmt.Sprintf("https://127.0.0.1/%d", i))
	}
	_, _, err := f.svc.Create(context.Background(), "acme", webhook.Params{URL: "https://127.0.0.1/one-more", EventTypes: webhook.EventTypes})
	if !errors.Is(err, webhook.ErrInvalid) {
		t.Errorf("Create(#%d) = %v, want ErrInvalid", webhook.MaxSubscriptions+1, err)
	}
	f.create(t, "other", "https://127.0.0.1/x")
}

// TestSecretIsWriteOnly checks that after Create nothing hands the secret
// out: not the subscription in any encoding, not List or Get, not the
// secret value's own formatting, not the logs, and not the database file
// or its WAL in clear (the URL is sealed too).
func TestSecretIsWriteOnly(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	rcv := newReceiver(t, false, f.clock.Now, func(n int) int {
		if n == 1 {
			return 500
		}
		return 200
	})
	ctx := context.Background()
	url := rcv.URL() + "?token=receiver-credential-in-url"
	sub, sec, err := f.svc.Create(ctx, "acme", webhook.Params{URL: url, EventTypes: webhook.EventTypes})
	if err != nil {
		t.Fatal(err)
	}
	secret := sec.Bytes()
	for _, s := range []string{fmt.Sprint(sec), fmt.Sprintf("%v %+v %#v %s %q %x", sec, sec, sec, sec, sec, sec)} {
		if strings.Contains(s, string(secret)) {
			t.Errorf("formatting the secret value shows it: %s", s)
		}
	}
	if b, _ := json.Marshal(struct {
		webhook.Subscription
		Secret any
	}{sub, sec}); bytes.Contains(b, secret) {
		t.Errorf("JSON of subscription and secret value holds the secret: %s", b)
	}
	_, rotated, err := f.svc.RotateSecret(ctx, "acme", sub.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{secret, rotated.Bytes()}

	f.enqueue(t, "acme", event("e1", webhook.EventSessionCreated))
	f.step(t)
	f.retry(t, time.Minute, 1)
	f.step(t)
	if got := rcv.count(); got != 2 {
		t.Fatalf("receiver got %d requests, want 2", got)
	}

	got, err := f.svc.Get(ctx, "acme", sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.svc.List(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	page, err := f.svc.Deliveries(ctx, "acme", sub.ID, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal([]any{got, list, page, fmt.Sprintf("%+v %+v %+v", got, list, page)})
	files, err := os.ReadDir(f.env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	db := map[string][]byte{}
	for _, e := range files {
		b, err := os.ReadFile(filepath.Join(f.env.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		db[e.Name()] = b
	}
	if len(db) < 2 {
		t.Fatalf("database files = %d, want the database and its WAL", len(db))
	}
	for i, s := range secrets {
		body := []byte(strings.TrimPrefix(string(s), webhook.SecretPrefix))
		raw, _ := base64.RawURLEncoding.DecodeString(string(body))
		for _, needle := range [][]byte{body, raw} {
			if bytes.Contains(out, needle) {
				t.Errorf("secret %d appears in what the API returns", i)
			}
			if strings.Contains(f.log.String(), string(needle)) {
				t.Errorf("secret %d appears in the log", i)
			}
			for name, b := range db {
				if bytes.Contains(b, needle) {
					t.Errorf("secret %d appears in clear in %s", i, name)
				}
			}
		}
	}
	for _, needle := range []string{"receiver-credential-in-url", "hooks/idvault", "sess-e1"} {
		for name, b := range db {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("%q appears in clear in %s", needle, name)
			}
		}
		if strings.Contains(f.log.String(), needle) {
			t.Errorf("%q appears in the log", needle)
		}
	}
	if strings.Contains(f.log.String(), "never stored") {
		t.Error("a response body appears in the log")
	}
	if bytes.Contains(out, []byte("never stored")) {
		t.Error("a response body appears in the delivery log")
	}
	if !strings.Contains(f.log.String(), sub.ID) {
		t.Error("the log has no line naming the subscription: the scan above proves nothing")
	}
}

// TestCrossTenant checks the repository's tenant scoping: tenant B cannot
// read, change, rotate, delete or redeliver anything of tenant A, nor see
// A's delivery log, nor trigger A's subscriptions with its events.
func TestCrossTenant(t *testing.T) {
	rcv := newReceiver(t, false, nil, nil)
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	ctx := context.Background()
	subA, _ := f.create(t, "tenant-a", rcv.URL())
	ids := f.enqueue(t, "tenant-a", event("a1", webhook.EventSessionCreated))
	f.step(t)
	url := "https://127.0.0.1/stolen"
	off := false

	if _, err := f.svc.Get(ctx, "tenant-b", subA.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B: Get(A's) = %v, want ErrNotFound", err)
	}
	if _, err := f.svc.Update(ctx, "tenant-b", subA.ID, webhook.Changes{URL: &url, Active: &off}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B: Update(A's) = %v, want ErrNotFound", err)
	}
	if _, _, err := f.svc.RotateSecret(ctx, "tenant-b", subA.ID, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B: RotateSecret(A's) = %v, want ErrNotFound", err)
	}
	if err := f.svc.Delete(ctx, "tenant-b", subA.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B: Delete(A's) = %v, want ErrNotFound", err)
	}
	if _, err := f.svc.Delivery(ctx, "tenant-b", ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B: Delivery(A's) = %v, want ErrNotFound", err)
	}
	if _, err := f.svc.Redeliver(ctx, "tenant-b", ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B: Redeliver(A's) = %v, want ErrNotFound", err)
	}
	if page, err := f.svc.Deliveries(ctx, "tenant-b", subA.ID, 0, ""); err != nil || len(page.Deliveries) != 0 {
		t.Errorf("B: Deliveries(A's subscription) = %v, %v, want none", page, err)
	}
	if list, err := f.svc.List(ctx, "tenant-b"); err != nil || len(list) != 0 {
		t.Errorf("B: List() = %v, %v, want none", list, err)
	}
	if ids, err := f.svc.Enqueue(ctx, "tenant-b", event("b1", webhook.EventSessionCreated)); err != nil || len(ids) != 0 {
		t.Errorf("B: Enqueue() = %v, %v, want no deliveries", ids, err)
	}
	if secrets, err := f.keys.Secrets(ctx, "tenant-b"); err != nil || len(secrets) != 0 {
		t.Errorf("B's keyring secrets = %v, %v, want none", secrets, err)
	}

	got, err := f.svc.Get(ctx, "tenant-a", subA.ID)
	if err != nil || got.URL != subA.URL || !got.Active || got.SecretRotatedAt != nil {
		t.Errorf("A's subscription after B's attempts = %+v, %v; want unchanged", got, err)
	}
	if d := f.delivery(t, "tenant-a", ids[0]); d.Redeliveries != 0 || d.AttemptCount != 1 {
		t.Errorf("A's delivery after B's attempts = %+v, want unchanged", d)
	}
	if rcv.count() != 1 {
		t.Errorf("receiver got %d requests, want only A's one", rcv.count())
	}
}

// TestRotateSecret checks the rotation contract: during the grace period
// each delivery verifies under the old and the new secret; after it, only
// under the new one; a rotation with grace 0 revokes the old secret at
// once and deletes it.
func TestRotateSecret(t *testing.T) {
	f := newFixture(t, setup{opts: webhook.Options{Policy: loopback}})
	rcv := newReceiver(t, false, f.clock.Now, nil)
	ctx := context.Background()
	sub, s1 := f.create(t, "acme", rcv.URL())
	rcv.setSecret("s1", s1)

	f.clock.Advance(time.Minute)
	rot, v2, err := f.svc.RotateSecret(ctx, "acme", sub.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s2 := v2.Bytes()
	rcv.setSecret("s2", s2)
	if bytes.Equal(s1, s2) {
		t.Fatal("rotation returned the same secret")
	}
	wantUntil := start.Add(time.Minute + time.Hour)
	if rot.PreviousSecretUntil == nil || !rot.PreviousSecretUntil.Equal(wantUntil) || rot.SecretRotatedAt == nil {
		t.Errorf("after rotation: %+v, want previous secret until %v", rot, wantUntil)
	}

	f.enqueue(t, "acme", event("during-grace", webhook.EventSessionCreated))
	f.step(t)
	got := rcv.next(t)
	if got.verifyErr["s1"] != nil || got.verifyErr["s2"] != nil {
		t.Errorf("during grace: Verify old = %v, new = %v; want both nil", got.verifyErr["s1"], got.verifyErr["s2"])
	}
	if n := strings.Count(got.header.Get(webhook.HeaderSignature), "v1="); n != 2 {
		t.Errorf("during grace: %d v1 signatures, want 2", n)
	}

	f.clock.Advance(time.Hour)
	if sub, _ := f.svc.Get(ctx, "acme", sub.ID); sub.PreviousSecretUntil != nil {
		t.Errorf("after grace: PreviousSecretUntil = %v, want none", sub.PreviousSecretUntil)
	}
	f.enqueue(t, "acme", event("after-grace", webhook.EventSessionCreated))
	f.step(t)
	got = rcv.next(t)
	if !errors.Is(got.verifyErr["s1"], webhook.ErrSignatureMismatch) || got.verifyErr["s2"] != nil {
		t.Errorf("after grace: Verify old = %v, new = %v; want mismatch, nil", got.verifyErr["s1"], got.verifyErr["s2"])
	}

	_, v3, err := f.svc.RotateSecret(ctx, "acme", sub.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	rcv.setSecret("s3", v3.Bytes())
	f.enqueue(t, "acme", event("revoked", webhook.EventSessionCreated))
	f.step(t)
	got = rcv.next(t)
	if !errors.Is(got.verifyErr["s2"], webhook.ErrSignatureMismatch) || got.verifyErr["s3"] != nil {
		t.Errorf("after revoking rotation: Verify s2 = %v, s3 = %v; want mismatch, nil", got.verifyErr["s2"], got.verifyErr["s3"])
	}
	if secrets, err := f.keys.Secrets(ctx, "acme"); err != nil || len(secrets) != 1 {
		t.Errorf("keyring holds %d secrets (%v), want only the current one", len(secrets), err)
	}
}
