// Package scheduler runs the timed jobs of the scheduler role: expiring
// sessions past their TTL and republishing sessions whose workflow message
// was lost. Only one scheduler is active at a time (see package lease).
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow"
)

// Scheduler runs the jobs.
type Scheduler struct {
	backend  store.Backend
	barrier  barrier.Barrier
	ids      *identity.Service
	broker   queue.Broker
	emitter  *audit.Emitter
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	// republishAfter is how long a session may wait for the workflow
	// before its message is published again.
	republishAfter time.Duration
}

// New returns a scheduler running its jobs every interval and republishing
// sessions that waited for the workflow longer than republishAfter.
func New(backend store.Backend, b barrier.Barrier, ids *identity.Service, broker queue.Broker, emitter *audit.Emitter, log *slog.Logger, now func() time.Time, interval, republishAfter time.Duration) *Scheduler {
	if now == nil {
		now = time.Now
	}
	return &Scheduler{backend: backend, barrier: b, ids: ids, broker: broker, emitter: emitter, log: log, now: now,
		interval: interval, republishAfter: republishAfter}
}

// Run runs the jobs at once and then every interval until ctx is done.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduler: jobs failed", "err", err)
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
}

// RunOnce runs every job once over every tenant.
func (s *Scheduler) RunOnce(ctx context.Context) error {
	var rep Report
	err := s.ids.Tenants(ctx, func(t identity.Tenant) error {
		v, err := store.NewView(s.backend, s.barrier, t.ID)
		if err != nil {
			return err
		}
		repo := session.NewRepo(v)
		return errors.Join(s.expire(ctx, t.ID, repo, &rep), s.republish(ctx, t.ID, repo, &rep))
	})
	if rep.Expired > 0 || rep.Republished > 0 {
		s.log.Info("scheduler: pass", "expired", rep.Expired, "republished", rep.Republished)
	}
	return err
}

func (s *Scheduler) expire(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	now := s.now()
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
					if err := s.emitter.Emit(ctx, audit.Event{Tenant: tenant, Actor: audit.Actor{Type: "system", ID: "scheduler"},
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
		list, next, err := repo.List(ctx, session.Filter{Advance: true, UpdatedBefore: s.now().Add(-s.republishAfter), Limit: 100, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, sess := range list {
			if err := workflow.Publish(ctx, s.broker, tenant, sess.ID); err != nil {
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
