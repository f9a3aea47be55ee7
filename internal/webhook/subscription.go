package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/secret"
	"github.com/idvault/idvault/internal/store"
)

// SecretNamePrefix begins the name under which the webhook service keeps
// each signing secret among the tenant's secrets; the admin secrets API
// refuses and hides these names.
const SecretNamePrefix = "webhook."

// Subscription is a tenant's order to be told about events of some types at
// a URL. It never holds the signing secret.
type Subscription struct {
	ID         string      `json:"id"`
	URL        string      `json:"url"`
	EventTypes []EventType `json:"eventTypes"`
	// Active subscriptions receive new events; an inactive one receives
	// none, and its pending deliveries end as failed.
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// SecretRotatedAt is when the secret was last rotated, if ever.
	SecretRotatedAt *time.Time `json:"secretRotatedAt,omitempty"`
	// PreviousSecretUntil is when the secret in use before the last
	// rotation stops signing; absent when it already has.
	PreviousSecretUntil *time.Time `json:"previousSecretUntil,omitempty"`
}

// subRecord is the stored subscription: the subscription and the names
// under which Secrets keeps its current and previous signing secrets.
type subRecord struct {
	Subscription
	SecretName     string    `json:"secretName"`
	PrevSecretName string    `json:"prevSecretName,omitempty"`
	PrevUntil      time.Time `json:"prevUntil,omitzero"`
}

// public returns the subscription as callers see it at now.
func (r subRecord) public(now time.Time) Subscription {
	s := r.Subscription
	s.EventTypes = slices.Clone(s.EventTypes)
	s.PreviousSecretUntil = nil
	if r.PrevSecretName != "" && now.Before(r.PrevUntil) {
		t := r.PrevUntil
		s.PreviousSecretUntil = &t
	}
	return s
}

// Params are the fields of a new subscription.
type Params struct {
	URL        string
	EventTypes []EventType
}

// Changes are the fields Update changes; nil fields stay as they are.
type Changes struct {
	URL        *string
	EventTypes []EventType
	Active     *bool
}

// Limits on subscriptions.
const (
	// MaxSubscriptions is the most subscriptions a tenant has.
	MaxSubscriptions = 100
	// DefaultSecretGrace is the grace period documented for RotateSecret:
	// how long the previous secret keeps signing after a rotation.
	DefaultSecretGrace = 24 * time.Hour
	// MaxSecretGrace is the longest grace period RotateSecret takes.
	MaxSecretGrace = 7 * 24 * time.Hour
)

// SecretPrefix starts every signing secret. The whole string, prefix
// included, is the HMAC key.
const SecretPrefix = "whsec_"

// newSecret returns a fresh signing secret: SecretPrefix and 32 random
// bytes in unpadded base64url.
func newSecret() (secret.Value, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return secret.Value{}, fmt.Errorf("webhook: secret: %w", err)
	}
	s := []byte(SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]))
	v := secret.New(s)
	clear(s)
	clear(b[:])
	return v, nil
}

// secretName returns a fresh name for a secret of subscription id. Each
// secret gets its own name, so concurrent rotations never overwrite a
// secret that another one already returned.
func secretName(id string) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("webhook: secret name: %w", err)
	}
	return SecretNamePrefix + id + "." + hex.EncodeToString(b[:]), nil
}

// eventTypes validates types and returns them without duplicates, in the
// order of EventTypes.
func eventTypes(types []EventType) ([]EventType, error) {
	if len(types) == 0 {
		return nil, fmt.Errorf("no event types: %w", ErrInvalid)
	}
	for _, t := range types {
		if !t.Valid() {
			return nil, fmt.Errorf("event type %q: %w", t, ErrInvalid)
		}
	}
	out := make([]EventType, 0, len(types))
	for _, t := range EventTypes {
		if slices.Contains(types, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Create stores a new, active subscription of tenant and returns it with
// its signing secret. This is the only time the secret is returned: it is
// kept sealed by Secrets and nothing reads it back for a caller. The
// secret prints as REDACTED; the caller shows secret.Bytes() once.
//
// An audit event attached to ctx for CollSubscriptions (audit.Emitter.Attach)
// commits with the new record.
func (s *Service) Create(ctx context.Context, tenant string, p Params) (Subscription, secret.Value, error) {
	v, err := s.view(tenant)
	if err != nil {
		return Subscription{}, secret.Value{}, err
	}
	if _, err := s.o.Policy.ValidateURL(ctx, s.d.Resolver, p.URL); err != nil {
		return Subscription{}, secret.Value{}, fmt.Errorf("create webhook: %w", err)
	}
	types, err := eventTypes(p.EventTypes)
	if err != nil {
		return Subscription{}, secret.Value{}, fmt.Errorf("create webhook: %w", err)
	}
	n := 0
	if err := v.Each(ctx, store.Query{Collection: CollSubscriptions, Limit: store.MaxLimit}, func(store.Record) error {
		n++
		return nil
	}); err != nil {
		return Subscription{}, secret.Value{}, fmt.Errorf("create webhook: %w", err)
	}
	if n >= MaxSubscriptions {
		return Subscription{}, secret.Value{}, fmt.Errorf("create webhook: a tenant has at most %d subscriptions: %w", MaxSubscriptions, ErrInvalid)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Subscription{}, secret.Value{}, fmt.Errorf("create webhook: id: %w", err)
	}
	sec, err := newSecret()
	if err != nil {
		return Subscription{}, secret.Value{}, err
	}
	name, err := secretName(id.String())
	if err != nil {
		return Subscription{}, secret.Value{}, err
	}
	if err := s.putSecret(ctx, tenant, name, sec); err != nil {
		return Subscription{}, secret.Value{}, fmt.Errorf("create webhook: %w", err)
	}
	now := s.now()
	rec := subRecord{
		Subscription: Subscription{ID: id.String(), URL: p.URL, EventTypes: types, Active: true, CreatedAt: now, UpdatedAt: now},
		SecretName:   name,
	}
	sctx := store.Stamp(ctx, v, CollSubscriptions)
	for attempt := 0; ; attempt++ {
		_, err := v.Put(sctx, CollSubscriptions, rec.ID, nil, rec)
		if store.StampConflict(err) && attempt < maxStampRetries {
			continue
		}
		if err != nil {
			s.dropSecret(ctx, tenant, name)
			return Subscription{}, secret.Value{}, fmt.Errorf("create webhook: %w", err)
		}
		return rec.public(now), sec, nil
	}
}

// maxStampRetries bounds the retries of a write whose stamp another change
// moved meanwhile.
const maxStampRetries = 50

func (s *Service) putSecret(ctx context.Context, tenant, name string, sec secret.Value) error {
	b := sec.Bytes()
	defer clear(b)
	if err := s.d.Secrets.PutSecret(ctx, tenant, name, b); err != nil {
		return fmt.Errorf("store signing secret: %w", err)
	}
	return nil
}

// dropSecret deletes a secret nothing refers to any more. A failure
// leaves a sealed, unused secret behind; it is logged by name only.
func (s *Service) dropSecret(ctx context.Context, tenant, name string) {
	if name == "" {
		return
	}
	if err := s.d.Secrets.DeleteSecret(ctx, tenant, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.d.Log.Warn("webhook: unused signing secret not deleted", "tenant", tenant, "secret", name, "err", err)
	}
}

func (s *Service) getRecord(ctx context.Context, v *store.View, id string) (subRecord, int64, error) {
	var r subRecord
	rec, err := v.Get(ctx, CollSubscriptions, id, &r)
	if err != nil {
		return subRecord{}, 0, err
	}
	return r, rec.Version, nil
}

// Get returns tenant's subscription id, or store.ErrNotFound (also for the
// id of another tenant's subscription).
func (s *Service) Get(ctx context.Context, tenant, id string) (Subscription, error) {
	v, err := s.view(tenant)
	if err != nil {
		return Subscription{}, err
	}
	r, _, err := s.getRecord(ctx, v, id)
	if err != nil {
		return Subscription{}, fmt.Errorf("get webhook: %w", err)
	}
	return r.public(s.now()), nil
}

// List returns tenant's subscriptions, oldest first.
func (s *Service) List(ctx context.Context, tenant string) ([]Subscription, error) {
	v, err := s.view(tenant)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []Subscription{}
	err = v.Each(ctx, store.Query{Collection: CollSubscriptions, Limit: store.MaxLimit}, func(rec store.Record) error {
		var r subRecord
		if err := v.Decode(ctx, rec, &r); err != nil {
			return err
		}
		out = append(out, r.public(now))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// Update applies c to tenant's subscription id and returns it. A new URL is
// validated like one given to Create. An audit event attached to ctx for
// CollSubscriptions commits with the change.
func (s *Service) Update(ctx context.Context, tenant, id string, c Changes) (Subscription, error) {
	v, err := s.view(tenant)
	if err != nil {
		return Subscription{}, err
	}
	if c.URL != nil {
		if _, err := s.o.Policy.ValidateURL(ctx, s.d.Resolver, *c.URL); err != nil {
			return Subscription{}, fmt.Errorf("update webhook: %w", err)
		}
	}
	var types []EventType
	if c.EventTypes != nil {
		if types, err = eventTypes(c.EventTypes); err != nil {
			return Subscription{}, fmt.Errorf("update webhook: %w", err)
		}
	}
	ctx = store.Stamp(ctx, v, CollSubscriptions)
	for {
		r, version, err := s.getRecord(ctx, v, id)
		if err != nil {
			return Subscription{}, fmt.Errorf("update webhook: %w", err)
		}
		if c.URL != nil {
			r.URL = *c.URL
		}
		if types != nil {
			r.EventTypes = types
		}
		if c.Active != nil {
			r.Active = *c.Active
		}
		now := s.now()
		r.UpdatedAt = now
		_, err = v.Update(ctx, CollSubscriptions, id, version, nil, r)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Subscription{}, fmt.Errorf("update webhook: %w", err)
		}
		return r.public(now), nil
	}
}

// Delete removes tenant's subscription id and its signing secrets. Its
// pending deliveries end as failed; its delivery log stays until
// PruneDeliveries. An audit event attached to ctx for CollSubscriptions
// commits with the deletion.
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	ctx = store.Stamp(ctx, v, CollSubscriptions)
	for {
		r, version, err := s.getRecord(ctx, v, id)
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		err = v.Delete(ctx, CollSubscriptions, id, version)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		s.dropSecret(ctx, tenant, r.SecretName)
		s.dropSecret(ctx, tenant, r.PrevSecretName)
		return nil
	}
}

// RotateSecret gives tenant's subscription id a new signing secret and
// returns it, once, as Create does. For grace after the rotation every
// delivery carries a second v1 signature made with the previous secret, so
// a receiver can switch secrets without losing a message; grace 0 revokes
// the previous secret at once (a leaked secret). A secret displaced before
// its grace ended (two rotations in a row) stops signing at once. grace is
// 0 to MaxSecretGrace; DefaultSecretGrace is the documented choice. An
// audit event attached to ctx for CollSubscriptions commits with the change.
func (s *Service) RotateSecret(ctx context.Context, tenant, id string, grace time.Duration) (Subscription, secret.Value, error) {
	if grace < 0 || grace > MaxSecretGrace {
		return Subscription{}, secret.Value{}, fmt.Errorf("rotate webhook secret: grace is 0 to %s: %w", MaxSecretGrace, ErrInvalid)
	}
	v, err := s.view(tenant)
	if err != nil {
		return Subscription{}, secret.Value{}, err
	}
	sec, err := newSecret()
	if err != nil {
		return Subscription{}, secret.Value{}, err
	}
	name, err := secretName(id)
	if err != nil {
		return Subscription{}, secret.Value{}, err
	}
	if _, _, err := s.getRecord(ctx, v, id); err != nil {
		return Subscription{}, secret.Value{}, fmt.Errorf("rotate webhook secret: %w", err)
	}
	if err := s.putSecret(ctx, tenant, name, sec); err != nil {
		return Subscription{}, secret.Value{}, fmt.Errorf("rotate webhook secret: %w", err)
	}
	ctx = store.Stamp(ctx, v, CollSubscriptions)
	for {
		r, version, err := s.getRecord(ctx, v, id)
		if err != nil {
			s.dropSecret(ctx, tenant, name)
			return Subscription{}, secret.Value{}, fmt.Errorf("rotate webhook secret: %w", err)
		}
		now := s.now()
		displaced := []string{r.PrevSecretName}
		if grace == 0 {
			displaced = append(displaced, r.SecretName)
			r.PrevSecretName, r.PrevUntil = "", time.Time{}
		} else {
			r.PrevSecretName, r.PrevUntil = r.SecretName, now.Add(grace)
		}
		r.SecretName = name
		r.SecretRotatedAt = &now
		r.UpdatedAt = now
		_, err = v.Update(ctx, CollSubscriptions, id, version, nil, r)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			s.dropSecret(ctx, tenant, name)
			return Subscription{}, secret.Value{}, fmt.Errorf("rotate webhook secret: %w", err)
		}
		for _, d := range displaced {
			s.dropSecret(ctx, tenant, d)
		}
		return r.public(now), sec, nil
	}
}
