package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/audit/sink"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/store"
)

// CursorCollection keeps, under store.PlatformTenant, how far each sink has
// read each tenant's log: id sink name + "." + tenant.
const CursorCollection = "audit_sink_cursor"

// forwardPage is how many events one sink write carries at most.
const forwardPage = 500

// Forwarder sends every event appended to the log to the sinks. Each sink
// reads each tenant's log from a position of its own, stored after every
// delivered batch, so a sink that is down holds up nothing else and catches
// up when it returns; delivery is at least once. An event a sink refuses as
// invalid is skipped, logged and counted, never retried for ever.
type Forwarder struct {
	log    *auditlog.Log
	places *store.View
	sinks  []sink.Sink
	logger *slog.Logger
	// Poll is how often the forwarder looks for new events.
	Poll time.Duration
}

// NewForwarder returns a forwarder from lg to sinks, keeping its positions
// in backend.
func NewForwarder(lg *auditlog.Log, backend store.Backend, b barrier.Barrier, sinks []sink.Sink, logger *slog.Logger) (*Forwarder, error) {
	v, err := store.NewView(backend, b, store.PlatformTenant)
	if err != nil {
		return nil, err
	}
	return &Forwarder{log: lg, places: v, sinks: sinks, logger: logger, Poll: time.Second}, nil
}

// Run forwards until ctx ends.
func (f *Forwarder) Run(ctx context.Context) error {
	t := time.NewTicker(f.Poll)
	defer t.Stop()
	for {
		if _, err := f.Once(ctx); err != nil && ctx.Err() == nil {
			f.logger.Warn("audit forwarding: will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once forwards what every sink has not yet received and returns how many
// events were delivered. A failing sink is reported in the error and the
// others go on.
func (f *Forwarder) Once(ctx context.Context) (int, error) {
	tenants, err := f.log.Tenants(ctx)
	if err != nil {
		return 0, err
	}
	var (
		total int
		errs  []error
	)
	for _, s := range f.sinks {
		for _, tenant := range tenants {
			n, err := f.forward(ctx, s, tenant)
			total += n
			if err != nil {
				errs = append(errs, fmt.Errorf("%s sink, tenant %s: %w", s.Name(), tenant, err))
				break // the sink is failing: try it again next round
			}
		}
	}
	return total, errors.Join(errs...)
}

type sinkPlace struct {
	Cursor string `json:"cursor"`
}

// forward delivers tenant's new events to s, page by page.
func (f *Forwarder) forward(ctx context.Context, s sink.Sink, tenant string) (int, error) {
	id := s.Name() + "." + tenant
	var place sinkPlace
	rec, err := f.places.Get(ctx, CursorCollection, id, &place)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	total := 0
	for {
		page, next, err := f.log.Events(ctx, tenant, auditlog.Filter{}, place.Cursor, forwardPage)
		if err != nil {
			return total, err
		}
		if len(page) == 0 && next == "" {
			return total, nil
		}
		entries := make([]sink.Entry, 0, len(page))
		for _, st := range page {
			var ev struct {
				Action  string `json:"action"`
				Outcome string `json:"outcome"`
			}
			_ = json.Unmarshal(st.Data, &ev) // a malformed event is still forwarded; the sink decides
			entries = append(entries, sink.Entry{Tenant: tenant, Index: st.Index, Time: st.Time, Action: ev.Action, Outcome: ev.Outcome, Data: st.Data})
		}
		n, err := f.write(ctx, s, entries)
		if err != nil {
			return total, err
		}
		total += n
		cursor := next
		if cursor == "" {
			cursor = auditlog.CursorAfter(page[len(page)-1].Index)
		}
		place.Cursor = cursor
		if rec.Version == 0 {
			rec, err = f.places.Put(ctx, CursorCollection, id, nil, place)
		} else {
			rec, err = f.places.Update(ctx, CursorCollection, id, rec.Version, nil, place)
		}
		if err != nil {
			return total, fmt.Errorf("save position: %w", err)
		}
		if next == "" {
			return total, nil
		}
	}
}

// write delivers entries, leaving out any the sink refuses as invalid, and
// returns how many it delivered.
func (f *Forwarder) write(ctx context.Context, s sink.Sink, entries []sink.Entry) (int, error) {
	for len(entries) > 0 {
		err := s.Write(ctx, entries)
		var bad *sink.EntryError
		if !errors.As(err, &bad) {
			if err != nil {
				return 0, err
			}
			return len(entries), nil
		}
		f.logger.Error("audit forwarding: event refused by the sink and skipped", "sink", s.Name(), "tenant", bad.Tenant, "position", bad.Index, "reason", bad.Reason)
		kept := entries[:0:0]
		for _, e := range entries {
			if e.Index != bad.Index {
				kept = append(kept, e)
			}
		}
		if len(kept) == len(entries) {
			return 0, err
		}
		entries = kept
	}
	return 0, nil
}
