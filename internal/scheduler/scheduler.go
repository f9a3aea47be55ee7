// Package scheduler runs the timed jobs of the scheduler role: expiring
// sessions past their TTL, republishing sessions whose workflow message was
// lost, and sweeping stored objects that no session references. Only one scheduler is active at a time (see package lease).
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow"
)

// Deps are what the scheduler needs. Zero durations take the defaults of
// the matching config keys (scheduler.*).
type Deps struct {
	Backend  store.Backend
	Barrier  barrier.Barrier
	Identity *identity.Service
	Broker   queue.Broker
	Files    *files.Store
	Audit    *audit.Emitter
	Log      *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Interval is how often the jobs run.
	Interval time.Duration
	// RepublishAfter is how long a session may wait for the workflow
	// before its message is published again.
	RepublishAfter time.Duration
	// SweepInterval is how often stored files are swept for objects no
	// session references.
	SweepInterval time.Duration
	// OrphanGrace is how old an unreferenced object must be before the
	// sweep deletes it; it must exceed the longest upload.
	OrphanGrace time.Duration
}

// Scheduler runs the jobs. Only one goroutine may call Run or RunOnce.
type Scheduler struct {
	d         Deps
	lastSweep time.Time
}

// New returns a scheduler.
func New(d Deps) *Scheduler {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Scheduler{d: d}
}

// Run runs the jobs at once and then every interval until ctx is done.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.d.Interval)
	defer t.Stop()
	for {
		if _, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.d.Log.Error("scheduler: jobs failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Report counts what one pass did.
type Report struct {
	Expired     int
	Republished int
	Swept       int
}

// RunOnce runs every due job once over every tenant and reports what it did.
func (s *Scheduler) RunOnce(ctx context.Context) (Report, error) {
	var rep Report
	sweep := s.d.Files != nil && !s.d.Now().Before(s.lastSweep.Add(s.d.SweepInterval))
	err := s.d.Identity.Tenants(ctx, func(t identity.Tenant) error {
		v, err := store.NewView(s.d.Backend, s.d.Barrier, t.ID)
		if err != nil {
			return err
		}
		repo := session.NewRepo(v)
		errs := []error{s.expire(ctx, t.ID, repo, &rep), s.republish(ctx, t.ID, repo, &rep)}
		if sweep {
			errs = append(errs, s.sweep(ctx, t.ID, repo, &rep))
		}
		return errors.Join(errs...)
	})
	if sweep && err == nil {
		s.lastSweep = s.d.Now()
	}
	if rep != (Report{}) {
		s.d.Log.Info("scheduler: pass", "expired", rep.Expired, "republished", rep.Republished, "swept", rep.Swept)
	}
	return rep, err
}

func (s *Scheduler) expire(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	now := s.d.Now()
	for _, st := range []session.Status{session.StatusPending, session.StatusInProgress} {
		cursor := ""
		for {
			list, next, err := repo.List(ctx, session.Filter{Status: st, ExpiresBefore: now, Limit: 100, Cursor: cursor})
			if err != nil {
				return err
			}
			for _, sess := range list {
				expired := false
				_, err := repo.Update(ctx, sess.ID, now, func(x *session.Session) error {
					if !x.Status.Open() || x.ExpiresAt.After(now) {
						return session.ErrUnchanged
					}
					x.Status, x.Reason, expired = session.StatusExpired, "ttl", true
					return nil
				})
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("expire session: %w", err)
				}
				if expired {
					rep.Expired++
					if err := s.d.Audit.Emit(ctx, audit.Event{Tenant: tenant, Actor: audit.Actor{Type: "system", ID: "scheduler"},
						Action: "session.expire", Resource: audit.Resource{Type: "session", ID: sess.ID}, Outcome: audit.Success}); err != nil {
						return err
					}
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return nil
}

func (s *Scheduler) republish(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	cursor := ""
	for {
		list, next, err := repo.List(ctx, session.Filter{Advance: true, UpdatedBefore: s.d.Now().Add(-s.d.RepublishAfter), Limit: 100, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, sess := range list {
			if err := workflow.Publish(ctx, s.d.Broker, tenant, sess.ID); err != nil {
				return fmt.Errorf("republish session: %w", err)
			}
			rep.Republished++
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// sweep deletes the objects of tenant's sessions location that no session
// references and that are older than the grace period: objects written by an
// upload whose process died before it recorded them, and temporary objects
// of writes that never completed. They are sealed and unreachable, so this
// frees space; it never touches a referenced file.
func (s *Scheduler) sweep(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	var stale []string
	err := s.d.Files.Stale(ctx, tenant, files.Sessions, s.d.Now().Add(-s.d.OrphanGrace), func(id string) error {
		stale = append(stale, id)
		return nil
	})
	if err != nil || len(stale) == 0 {
		return err
	}
	referenced := map[string]bool{}
	cursor := ""
	for {
		list, next, err := repo.List(ctx, session.Filter{Limit: 100, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, sess := range list {
			for _, f := range sess.Files {
				referenced[f.ID] = true
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for _, id := range stale {
		if referenced[id] {
			continue
		}
		err := s.d.Files.Delete(ctx, files.Ref{Tenant: tenant, Location: files.Sessions, ID: id})
		if err != nil && !errors.Is(err, files.ErrNotFound) {
			return fmt.Errorf("sweep: %w", err)
		}
		rep.Swept++
	}
	return nil
}
