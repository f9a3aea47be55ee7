package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/lease"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// sealedCollections lists every collection whose record bodies are sealed
// by the barrier (the key records of keyring.Collection are not: they hold
// keys wrapped by root keys). identity.CollSettings also holds the init
// record of the platform tenant.
var sealedCollections = []string{
	identity.CollTenants, identity.CollUsers, identity.CollUsernames, identity.CollAPIKeys, identity.CollTokens,
	identity.CollSignIn, identity.CollConsoleSessions, identity.CollSettings, identity.CollAPIKeyUse, identity.CollDeviceTokens, identity.CollGroups, identity.CollRoles,
	identity.CollSSOLinks, identity.CollOIDCStates,
	session.Collection, session.RunsCollection, session.GatewayCallsCollection, engine.DefinitionsCollection,
	webhook.CollSubscriptions, webhook.CollDeliveries, webhook.CollSchedule,
	audit.OutboxCollection, audit.ProgressCollection, audit.CursorCollection, lease.Collection, store.StampsCollection,
}

// MigrateToAESGCM re-seals every Fernet-sealed record body under the key
// hierarchy, then re-wraps every Fernet-sealed file key of every session.
// It is resumable and safe to run while the platform serves; the Fernet keys
// must stay configured until it reports zero left.
func (s *Server) MigrateToAESGCM(ctx context.Context, progress keyring.Progress) (keyring.MigrateReport, error) {
	collections := slices.Concat(sealedCollections, auditlog.SealedCollections)
	rep, err := s.Keyring.Migrate(ctx, s.tenantsAndLogs, collections, store.BodyPlace, progress)
	if err != nil {
		return rep, err
	}
	if s.AuditLog != nil {
		logs, err := s.AuditLog.Tenants(ctx)
		if err != nil {
			return rep, err
		}
		for _, t := range logs {
			n, err := s.AuditLog.ResealLeaves(ctx, t, keyring.IsFernet)
			rep.Resealed += n
			if err != nil {
				return rep, err
			}
		}
	}
	err = s.Identity.Tenants(ctx, func(t identity.Tenant) error {
		v, err := store.NewView(s.Backend, s.Barrier, t.ID)
		if err != nil {
			return err
		}
		repo := session.NewRepo(v)
		return repo.Each(ctx, session.Filter{}, func(sess *session.Session) error {
			n, err := s.rewrapFileKeys(ctx, repo, t.ID, sess)
			rep.Resealed += n
			return err
		})
	})
	return rep, err
}

func (s *Server) rewrapFileKeys(ctx context.Context, repo *session.Repo, tenant string, sess *session.Session) (int, error) {
	changed := 0
	_, err := repo.Update(ctx, sess.ID, time.Now(), func(x *session.Session) error {
		changed = 0
		for i, f := range x.Files {
			if !keyring.IsFernet(f.Sealed.WrappedKey) {
				continue
			}
			sealed, err := s.Files.Rewrap(ctx, x.FileRef(tenant, f.ID), f.Sealed)
			if err != nil {
				return fmt.Errorf("rewrap file key %s: %w", f.ID, err)
			}
			x.Files[i].Sealed = sealed
			changed++
		}
		if changed == 0 {
			return session.ErrUnchanged
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	return changed, err
}

// tenantsAndLogs calls fn for the platform tenant, every tenant, and every
// tenant that has an audit log but no tenant record (its log outlives it).
func (s *Server) tenantsAndLogs(ctx context.Context, fn func(tenant string) error) error {
	seen := map[string]bool{}
	if err := s.Tenants(ctx, func(t string) error {
		seen[t] = true
		return fn(t)
	}); err != nil {
		return err
	}
	if s.AuditLog == nil {
		return nil
	}
	logs, err := s.AuditLog.Tenants(ctx)
	if err != nil {
		return err
	}
	for _, t := range logs {
		if !seen[t] {
			if err := fn(t); err != nil {
				return err
			}
		}
	}
	return nil
}
