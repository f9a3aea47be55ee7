// Package lease gives singleton roles (scheduler, audit, indexer) one active
// holder across processes that share a store: a lease record, acquired and
// renewed with compare-and-swap, that expires when its holder stops renewing.
// A second process waits as a hot standby and takes over after the TTL.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/store"
)

// Collection is the store collection of leases (under store.PlatformTenant).
const Collection = "leases"

type record struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Manager acquires and renews leases for one holder.
type Manager struct {
	view   *store.View
	holder string
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
}

// NewManager returns a lease manager for holder (unique per process).
func NewManager(backend store.Backend, b barrier.Barrier, holder string, ttl time.Duration, now func() time.Time, log *slog.Logger) (*Manager, error) {
	v, err := store.NewView(backend, b, store.PlatformTenant)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Manager{view: v, holder: holder, ttl: ttl, now: now, log: log}, nil
}

// TryAcquire takes or renews the lease name; it reports whether this holder
// holds it until now+ttl.
func (m *Manager) TryAcquire(ctx context.Context, name string) (bool, error) {
	now := m.now()
	var cur record
	rec, err := m.view.Get(ctx, Collection, name, &cur)
	next := record{Holder: m.holder, Until: now.Add(m.ttl)}
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = m.view.Put(ctx, Collection, name, nil, next)
	case err != nil:
		return false, fmt.Errorf("lease %s: %w", name, err)
	case cur.Holder != m.holder && now.Before(cur.Until):
		return false, nil
	default:
		_, err = m.view.Update(ctx, Collection, name, rec.Version, nil, next)
	}
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return true, nil
}

// Release gives the lease up if this holder holds it.
func (m *Manager) Release(ctx context.Context, name string) error {
	var cur record
	rec, err := m.view.Get(ctx, Collection, name, &cur)
	if err != nil || cur.Holder != m.holder {
		return nil
	}
	err = m.view.Delete(ctx, Collection, name, rec.Version)
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// RunExclusive runs fn while this holder holds lease name: it waits for the
// lease, runs fn with a context that is cancelled if the lease is lost, and
// renews it every ttl/3. If the lease is lost or fn returns, it stands by
// and tries again. It returns nil when ctx is done.
func (m *Manager) RunExclusive(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	tick := time.NewTicker(m.ttl / 3)
	defer tick.Stop()
	for {
		ok, err := m.TryAcquire(ctx, name)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("lease: acquire failed", "lease", name, "err", err)
		}
		if ok {
			err := m.hold(ctx, name, tick, fn)
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("lease: released (lost, or the role stopped); standing by", "lease", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (m *Manager) hold(ctx context.Context, name string, tick *time.Ticker, fn func(ctx context.Context) error) error {
	m.log.Info("lease: acquired", "lease", name)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fn(runCtx) }()
	defer func() {
		_ = m.Release(context.WithoutCancel(ctx), name)
	}()
	for {
		select {
		case err := <-done:
			cancel()
			return err
		case <-tick.C:
			if ok, err := m.TryAcquire(ctx, name); !ok || err != nil {
				cancel()
				<-done
				if err == nil {
					err = errors.New("taken by another holder")
				}
				return err
			}
		}
	}
}
