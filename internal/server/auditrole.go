package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/audit/sink"
)

// runAudit is the audit role: the relay that moves events from the outbox to
// the broker, the consumer that appends them to the tamper-evident log, the
// checkpoint clock and retention. It runs until ctx ends.
func (s *Server) runAudit(ctx context.Context) error {
	if s.AuditLog == nil {
		return errors.New("audit role: no checkpoint signing key")
	}
	relay, err := audit.NewRelay(s.Backend, s.Barrier, s.Broker, s.Audit, s.Log)
	if err != nil {
		return err
	}
	consumer := audit.NewConsumer(s.Broker, s.Backend, s.Barrier, audit.LogAppender(s.AuditLog), s.Log)
	// The consumer wakes the relay when it has appended; the relay's own
	// poll is left for consumers of other processes.
	consumer.OnAppended(relay.Appended)
	relay.InFlightPoll = 50 * time.Millisecond
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(name string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				cancel(err)
			}
		})
	}
	run("relay", relay.Run)
	run("consumer", consumer.Run)
	run("checkpoints", s.auditClock)
	sinks, err := s.auditSinks()
	if err != nil {
		cancel(err)
		wg.Wait()
		return err
	}
	defer closeSinks(sinks, s.Log)
	if len(sinks) > 0 {
		fw, err := audit.NewForwarder(s.AuditLog, s.Backend, s.Barrier, sinks, s.Log)
		if err != nil {
			cancel(err)
			wg.Wait()
			return err
		}
		run("forwarder", fw.Run)
		for _, sk := range sinks {
			if file, ok := sk.(*sink.File); ok {
				wg.Go(func() {
					onHangup(ctx, func() {
						if err := file.Reopen(); err != nil {
							s.Log.Warn("audit file sink: reopen failed; still writing to the old file", "err", err)
						}
					})
				})
			}
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// auditSinks opens the configured forwarding sinks.
func (s *Server) auditSinks() ([]sink.Sink, error) {
	var sinks []sink.Sink
	c := s.Config.Audit.Sinks
	if c.File.Path != "" {
		f, err := sink.NewFile(c.File.Path, sink.FileOptions{})
		if err != nil {
			return nil, fmt.Errorf("audit.sinks.file: %w", err)
		}
		sinks = append(sinks, f)
	}
	if c.Syslog.Address != "" {
		sl, err := sink.NewSyslog(sink.SyslogConfig{Address: c.Syslog.Address, CAFile: c.Syslog.CAFile,
			CertFile: c.Syslog.CertFile, KeyFile: c.Syslog.KeyFile, Facility: c.Syslog.Facility, Logger: s.Log})
		if err != nil {
			closeSinks(sinks, s.Log)
			return nil, fmt.Errorf("audit.sinks.syslog: %w", err)
		}
		sinks = append(sinks, sl)
	}
	return sinks, nil
}

func closeSinks(sinks []sink.Sink, log *slog.Logger) {
	for _, sk := range sinks {
		if err := sk.Close(); err != nil {
			log.Warn("audit sink: close", "sink", sk.Name(), "err", err)
		}
	}
}

// auditClock signs checkpoints of logs whose newest events have waited
// audit.checkpointInterval, and prunes events older than audit.keepFor once
// an hour.
func (s *Server) auditClock(ctx context.Context) error {
	tick := time.NewTicker(min(s.Config.Audit.CheckpointInterval/4+time.Millisecond, time.Second))
	defer tick.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if err := s.AuditLog.Tick(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn("audit: checkpoint", "err", err)
			}
			if keep := s.Config.Audit.KeepFor; keep > 0 && now.Sub(lastPrune) >= time.Hour {
				lastPrune = now
				s.pruneAudit(ctx, now.Add(-keep))
			}
		}
	}
}

// pruneAudit removes, from every tenant's log, the whole segments whose
// events are all older than before.
func (s *Server) pruneAudit(ctx context.Context, before time.Time) {
	tenants, err := s.AuditLog.Tenants(ctx)
	if err != nil {
		s.Log.Warn("audit: retention", "err", err)
		return
	}
	for _, t := range tenants {
		n, err := s.AuditLog.Prune(ctx, t, before)
		if err != nil {
			s.Log.Warn("audit: retention", "tenant", t, "err", err)
			continue
		}
		if n > 0 {
			s.Log.Info("audit: retention pruned events", "tenant", t, "events", n)
		}
	}
}
