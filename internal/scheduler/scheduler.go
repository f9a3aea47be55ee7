// Package scheduler runs the timed jobs of the scheduler role: expiring
// sessions past their TTL, republishing sessions whose workflow message was
// lost, sweeping stored objects that no session references, and
// re-verifying every stored file so that one changed outside the platform
// (ransomware, a manual edit in the bucket) is quarantined and reported
// before anyone asks for it. Only one scheduler is active at a time (see
// package lease).
//
// Verification works in rounds, one per tenant: a round reads every file of
// every session of the tenant that is not yet quarantined, completely, as a
// download does (files.Store.ReadAll), one file at a time. A pass reads at
// most Deps.VerifyBatch files over all tenants and the next pass resumes
// where it stopped; a tenant's next round begins Deps.VerifyInterval after
// its last one began (at once when that one took longer). Due tenants are
// served oldest first, so a tenant with many files delays the others but
// never starves them. The position is kept in memory only: a restarted
// scheduler begins a new round for every tenant. Sessions created after a
// round passed their place in the list, and files added to a session it
// already passed, wait for the next round; a round may read a file twice
// when a session is deleted under it, never skip one.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/keyring"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/webhook"
	"github.com/idvault/idvault/internal/workflow"
)

// Deps are what the scheduler needs. Zero durations and a zero VerifyBatch
// take the defaults of the matching config keys (scheduler.*).
type Deps struct {
	Backend  store.Backend
	Barrier  barrier.Barrier
	Identity *identity.Service
	Broker   queue.Broker
	Files    *files.Store
	// Keys, when set, lets the sweep shred session data keys whose session
	// is gone (a process that died while deleting a session).
	Keys  SessionKeys
	Audit *audit.Emitter
	// Webhooks, when set, tells the tenants' subscribers of the sessions
	// the scheduler expires (session.expired), in the same transaction as
	// the expiry.
	Webhooks *webhook.Service
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
	// VerifyInterval is how often every stored file of a tenant is read
	// back and verified.
	VerifyInterval time.Duration
	// VerifyBatch is the most files one pass reads for verification.
	VerifyBatch int
}

// Defaults of Deps, the same as those of the config keys.
const (
	defaultInterval       = 30 * time.Second
	defaultRepublishAfter = 30 * time.Second
	defaultSweepInterval  = time.Hour
	defaultOrphanGrace    = time.Hour
	defaultVerifyInterval = 24 * time.Hour
	defaultVerifyBatch    = 1000
)

// verifyPage is how many sessions verification lists at once.
const verifyPage = 100

// SessionKeys lists, shreds and re-wraps data keys (keyring.Keyring).
type SessionKeys interface {
	SessionKeys(ctx context.Context, tenant string, fn func(session string, created time.Time) error) error
	Shred(ctx context.Context, tenant, scope string) error
	// Rewrap re-wraps data keys under the primary root key (the background
	// half of a rotation) and returns how many it re-wrapped.
	Rewrap(ctx context.Context, tenants keyring.TenantLister, progress keyring.Progress) (int, error)
}

// Scheduler runs the jobs. Only one goroutine may call Run or RunOnce.
type Scheduler struct {
	d         Deps
	lastSweep time.Time
	// rounds holds each tenant's verification round by tenant id.
	rounds map[string]*round
}

// round is where one tenant's verification stands.
type round struct {
	// started is when the current round, or the last one, began; zero
	// before the first.
	started time.Time
	running bool
	// page is the cursor of the session page holding the next file to
	// verify, empty for the first page.
	page string
	// session is the id of the session holding the next file, empty for
	// the first session of the page; file is that file's index.
	session string
	file    int
}

// dueAt is when r is due: the start of a running round, or when the next
// one may begin.
func (r *round) dueAt(interval time.Duration) time.Time {
	if r.running {
		return r.started
	}
	return r.started.Add(interval)
}

// New returns a scheduler.
func New(d Deps) *Scheduler {
	if d.Now == nil {
		d.Now = time.Now
	}
	for _, v := range []struct {
		dst *time.Duration
		def time.Duration
	}{
		{&d.Interval, defaultInterval},
		{&d.RepublishAfter, defaultRepublishAfter},
		{&d.SweepInterval, defaultSweepInterval},
		{&d.OrphanGrace, defaultOrphanGrace},
		{&d.VerifyInterval, defaultVerifyInterval},
	} {
		if *v.dst == 0 {
			*v.dst = v.def
		}
	}
	if d.VerifyBatch == 0 {
		d.VerifyBatch = defaultVerifyBatch
	}
	return &Scheduler{d: d, rounds: map[string]*round{}}
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
	Expired int
	// Destroyed counts finished sessions destroyed by the tenants'
	// retention (identity.Policy.KeepSessionsForDays).
	Destroyed   int
	Republished int
	// Overdue counts sessions handed back to the workflow role because
	// the step they wait at passed its timeout.
	Overdue int
	Swept   int
	// Dropped counts records left behind by a session deleted in a process
	// that died midway (its workflow run, its gateway call count) that the
	// sweep removed.
	Dropped int
	// Rewrapped counts data keys re-wrapped under a new primary root key.
	Rewrapped int
	// Verified counts the files read back completely, Tampered those of
	// them this pass quarantined because their stored object failed
	// verification, Missing those it quarantined because their object was
	// gone.
	Verified int
	Tampered int
	Missing  int
}

// RunOnce runs every due job once over every tenant and reports what it did.
// A failing verification of one tenant does not keep the other jobs, or
// other tenants' verification, from running; its error is joined to the
// result.
func (s *Scheduler) RunOnce(ctx context.Context) (Report, error) {
	var rep Report
	sweep := s.d.Files != nil && !s.d.Now().Before(s.lastSweep.Add(s.d.SweepInterval))
	var tenants []string
	err := s.d.Identity.Tenants(ctx, func(t identity.Tenant) error {
		tenants = append(tenants, t.ID)
		v, err := store.NewView(s.d.Backend, s.d.Barrier, t.ID)
		if err != nil {
			return err
		}
		repo := session.NewRepo(v)
		errs := []error{s.expire(ctx, t.ID, repo, &rep), s.republish(ctx, t.ID, repo, &rep), s.overdue(ctx, t.ID, repo, &rep),
			s.retain(ctx, t.ID, repo, &rep)}
		if sweep {
			errs = append(errs, s.sweep(ctx, t.ID, v, repo, &rep))
		}
		return errors.Join(errs...)
	})
	if sweep && err == nil {
		s.lastSweep = s.d.Now()
	}
	if s.d.Files != nil {
		err = errors.Join(err, s.verify(ctx, tenants, err == nil, &rep))
	}
	if s.d.Keys != nil {
		n, rerr := s.d.Keys.Rewrap(ctx, func(ctx context.Context, fn func(string) error) error {
			if err := fn(store.PlatformTenant); err != nil {
				return err
			}
			for _, t := range tenants {
				if err := fn(t); err != nil {
					return err
				}
			}
			return nil
		}, nil)
		rep.Rewrapped = n
		err = errors.Join(err, rerr)
	}
	if rep.Expired+rep.Destroyed+rep.Republished+rep.Overdue+rep.Swept+rep.Dropped+rep.Rewrapped > 0 {
		s.d.Log.Info("scheduler: pass", "expired", rep.Expired, "destroyed", rep.Destroyed, "republished", rep.Republished,
			"overdue", rep.Overdue, "swept", rep.Swept, "dropped", rep.Dropped, "rewrapped", rep.Rewrapped)
	}
	return rep, err
}

// announceExpiry returns ctx carrying the session.expired event of sess
// for the tenant's webhook subscribers, to commit with the expiry.
func (s *Scheduler) announceExpiry(ctx context.Context, tenant string, sess *session.Session, now time.Time) (context.Context, func(context.Context), error) {
	if s.d.Webhooks == nil {
		return ctx, func(context.Context) {}, nil
	}
	ev := webhook.Event{ID: sess.ID + "." + string(webhook.EventSessionExpired), Type: webhook.EventSessionExpired, CreatedAt: now,
		Data: webhook.Data{SessionID: sess.ID, Status: session.StatusExpired, WorkflowID: sess.WorkflowID}}
	actx, published, err := s.d.Webhooks.Attach(ctx, tenant, session.Collection, ev)
	if err != nil {
		return nil, nil, fmt.Errorf("expire session: %w", err)
	}
	return actx, published, nil
}

func (s *Scheduler) expire(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	now := s.d.Now()
	for _, st := range []session.Status{session.StatusPending, session.StatusInProgress} {
		err := repo.Each(ctx, session.Filter{Status: st, ExpiresBefore: now}, func(sess *session.Session) error {
			expired := false
			actx, event := s.d.Audit.Attach(ctx, audit.Event{Tenant: tenant, Actor: audit.Actor{Type: "system", ID: "scheduler"},
				Action: "session.expire", Resource: audit.Resource{Type: "session", ID: sess.ID}, Outcome: audit.Success}, session.Collection)
			actx, published, err := s.announceExpiry(actx, tenant, sess, now)
			if err != nil {
				return err
			}
			_, err = repo.Update(actx, sess.ID, now, func(x *session.Session) error {
				expired = false // a compare-and-swap retry decides again
				if !x.Status.Open() || x.ExpiresAt.After(now) {
					return session.ErrUnchanged
				}
				x.Status, x.Reason, expired = session.StatusExpired, "ttl", true
				return nil
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("expire session: %w", err)
			}
			if !expired {
				return nil
			}
			rep.Expired++
			published(ctx)
			return event.Commit(ctx)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Scheduler) republish(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	return repo.Each(ctx, session.Filter{Advance: true, UpdatedBefore: s.d.Now().Add(-s.d.RepublishAfter)}, func(sess *session.Session) error {
		if err := workflow.Publish(ctx, s.d.Broker, tenant, sess.ID); err != nil {
			return fmt.Errorf("republish session: %w", err)
		}
		rep.Republished++
		return nil
	})
}

// overdue hands every session of tenant whose waiting step passed its
// timeout (session.Session.StepDeadline) to the workflow role, which
// expires it, or clears a deadline the session has left behind. The
// session's Advance flag is set first, so that republish hands it over
// again if the message is lost, and a session already flagged is left to
// republish.
func (s *Scheduler) overdue(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	now := s.d.Now()
	for _, st := range []session.Status{session.StatusPending, session.StatusInProgress, session.StatusReview} {
		err := repo.Each(ctx, session.Filter{Status: st, StepDeadlineBefore: now}, func(sess *session.Session) error {
			flagged := false
			_, err := repo.Update(ctx, sess.ID, now, func(x *session.Session) error {
				flagged = false // a compare-and-swap retry decides again
				if x.Advance || (!x.Status.Open() && x.Status != session.StatusReview) || x.StepDeadline.IsZero() || x.StepDeadline.After(now) {
					return session.ErrUnchanged
				}
				x.Advance, flagged = true, true
				return nil
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("flag overdue session: %w", err)
			}
			if !flagged {
				return nil
			}
			if err := workflow.Publish(ctx, s.d.Broker, tenant, sess.ID); err != nil {
				s.d.Log.Warn("scheduler: overdue session not published; republish will", "tenant", tenant, "session", sess.ID, "err", err)
			}
			rep.Overdue++
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sweep deletes the objects of tenant's sessions location that no session
// references and that are older than the grace period: objects written by an
// upload whose process died before it recorded them, and temporary objects
// of writes that never completed. They are sealed and unreachable, so this
// frees space; it never touches a referenced file, nor a document portrait
// of a session that still exists (session.PortraitFileID), which the
// session's workflow run references.
func (s *Scheduler) sweep(ctx context.Context, tenant string, v *store.View, repo *session.Repo, rep *Report) error {
	var stale []string
	err := s.d.Files.Stale(ctx, tenant, files.Sessions, s.d.Now().Add(-s.d.OrphanGrace), func(id string) error {
		stale = append(stale, id)
		return nil
	})
	if err != nil {
		return err
	}
	referenced, live := map[string]bool{}, map[string]bool{}
	err = repo.Each(ctx, session.Filter{}, func(sess *session.Session) error {
		live[sess.ID] = true
		for _, f := range sess.Files {
			referenced[f.ID] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.d.Keys != nil {
		if err := s.shredOrphanKeys(ctx, tenant, live); err != nil {
			return err
		}
	}
	if err := s.dropOrphanRecords(ctx, v, repo, live, rep); err != nil {
		return err
	}
	for _, id := range stale {
		if referenced[id] {
			continue
		}
		if owner, ok := session.PortraitSession(id); ok && live[owner] {
			// A document portrait DocReader extracted: the session's
			// workflow run references it, so it lives as long as the
			// session does.
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

// verify spends this pass's verification budget on the due tenants among
// tenants, oldest due first. all says tenants lists every tenant, so that
// rounds of tenants no longer listed can be forgotten.
func (s *Scheduler) verify(ctx context.Context, tenants []string, all bool, rep *Report) error {
	now := s.d.Now()
	listed := make(map[string]bool, len(tenants))
	var due []string
	for _, id := range tenants {
		listed[id] = true
		r := s.rounds[id]
		if r == nil {
			r = &round{}
			s.rounds[id] = r
		}
		if !now.Before(r.dueAt(s.d.VerifyInterval)) {
			due = append(due, id)
		}
	}
	if all {
		for id := range s.rounds {
			if !listed[id] {
				delete(s.rounds, id)
			}
		}
	}
	slices.SortStableFunc(due, func(a, b string) int {
		return s.rounds[a].dueAt(s.d.VerifyInterval).Compare(s.rounds[b].dueAt(s.d.VerifyInterval))
	})
	budget := s.d.VerifyBatch
	var errs []error
	for _, id := range due {
		if budget == 0 || ctx.Err() != nil {
			break
		}
		r := s.rounds[id]
		if !r.running {
			*r = round{started: now, running: true}
		}
		if err := s.verifyTenant(ctx, id, r, &budget, rep); err != nil {
			errs = append(errs, fmt.Errorf("verify files of tenant %s: %w", id, err))
		}
	}
	if rep.Verified > 0 {
		level := slog.LevelInfo
		if rep.Tampered+rep.Missing > 0 {
			level = slog.LevelWarn
		}
		s.d.Log.Log(ctx, level, "scheduler: verify", "checked", rep.Verified, "tampered", rep.Tampered, "missing", rep.Missing)
	}
	return errors.Join(errs...)
}

// verifyTenant continues tenant's round r until it ends or budget runs out,
// taking one from budget for every file it reads. On an error r stays at the
// file that failed, which the next pass reads again.
func (s *Scheduler) verifyTenant(ctx context.Context, tenant string, r *round, budget *int, rep *Report) error {
	v, err := store.NewView(s.d.Backend, s.d.Barrier, tenant)
	if err != nil {
		return err
	}
	repo := session.NewRepo(v)
	for *budget > 0 {
		list, next, err := repo.List(ctx, session.Filter{Limit: verifyPage, Cursor: r.page})
		if err != nil {
			return err
		}
		start := 0
		if r.session != "" {
			start = slices.IndexFunc(list, func(x *session.Session) bool { return x.ID == r.session })
			if start < 0 {
				// The session was deleted: read the page again from
				// its start rather than guess what followed it.
				start, r.session, r.file = 0, "", 0
			}
		}
		for _, sess := range list[start:] {
			if sess.ID != r.session {
				r.session, r.file = sess.ID, 0
			}
			for ; r.file < len(sess.Files); r.file++ {
				f := sess.Files[r.file]
				if f.Quarantined != nil {
					continue
				}
				if *budget == 0 {
					return nil
				}
				*budget--
				if err := s.verifyFile(ctx, tenant, repo, sess, f, rep); err != nil {
					return err
				}
			}
		}
		r.session, r.file = "", 0
		if next == "" {
			r.running = false
			return nil
		}
		r.page = next
	}
	return nil
}

// verifyFile reads file f of sess back completely. A file that fails
// verification, or whose object is gone, is quarantined exactly as a
// download does it (session.Repo.QuarantineFile) and reported with one
// file.tamper_detected audit event, unless a download quarantined it first.
// A bucket that cannot be read is an error and quarantines nothing.
func (s *Scheduler) verifyFile(ctx context.Context, tenant string, repo *session.Repo, sess *session.Session, f session.File, rep *Report) error {
	_, err := s.d.Files.ReadAll(ctx, sess.FileRef(tenant, f.ID), f.Sealed)
	reason, bad := session.QuarantineReasonOf(err)
	if err != nil && !bad {
		return fmt.Errorf("read file %s: %w", f.ID, err)
	}
	rep.Verified++
	if !bad {
		return nil
	}
	q := session.Quarantine{At: s.d.Now(), Reason: reason, By: session.ByScheduler}
	actx, event := s.d.Audit.Attach(ctx, audit.Event{Tenant: tenant, Actor: audit.Actor{Type: "system", ID: "scheduler"},
		Action: "file.tamper_detected", Outcome: audit.Denied, Reason: string(reason),
		Resource: audit.Resource{Type: "file", ID: f.ID}, Details: map[string]string{"session": sess.ID, "by": session.ByScheduler}}, session.Collection)
	marked, err := repo.QuarantineFile(actx, sess.ID, f.ID, q)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !marked) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("quarantine file %s: %w", f.ID, err)
	}
	if reason == session.ReasonObjectMissing {
		rep.Missing++
	} else {
		rep.Tampered++
	}
	return event.Commit(ctx)
}

// shredOrphanKeys shreds the data keys of sessions that no longer exist:
// a process that died between deleting a session's record and shredding
// its key leaves such a key behind, and crypto-shredding must still happen.
// A key younger than the grace period is left alone: its session may be
// sessionRecords are the collections holding one record per session, by the
// session's id, besides the session itself; session.Destroy deletes them.
var sessionRecords = []string{session.RunsCollection, session.GatewayCallsCollection}

// dropOrphanRecords deletes the records of sessionRecords whose session is
// gone: left by a session.Destroy whose process died between its steps.
// live holds the sessions listed before; a record of another session is
// deleted only if its session is still not found when read again just
// before, so a session created during the pass (its run commits with it)
// keeps its records. A workflow run is unreadable once its session's key is
// shredded; this frees the space.
func (s *Scheduler) dropOrphanRecords(ctx context.Context, v *store.View, repo *session.Repo, live map[string]bool, rep *Report) error {
	for _, coll := range sessionRecords {
		var ids []string
		err := v.Each(ctx, store.Query{Collection: coll, Limit: store.MaxLimit}, func(rec store.Record) error {
			if !live[rec.ID] {
				ids = append(ids, rec.ID)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sweep %s: %w", coll, err)
		}
		for _, id := range ids {
			_, err := repo.Get(ctx, id)
			if err == nil {
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("sweep %s: %w", coll, err)
			}
			if err := v.Delete(ctx, coll, id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("sweep %s: %w", coll, err)
			}
			rep.Dropped++
		}
	}
	return nil
}

// being created (the key is made before the record is written).
func (s *Scheduler) shredOrphanKeys(ctx context.Context, tenant string, live map[string]bool) error {
	var orphans []string
	cutoff := s.d.Now().Add(-s.d.OrphanGrace)
	err := s.d.Keys.SessionKeys(ctx, tenant, func(id string, created time.Time) error {
		if !live[id] && created.Before(cutoff) {
			orphans = append(orphans, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range orphans {
		if err := s.d.Keys.Shred(ctx, tenant, id); err != nil {
			return err
		}
		s.d.Log.Info("scheduler: shredded the data key of a deleted session", "tenant", tenant, "session", id)
	}
	return nil
}

// retainBatch is the most sessions one pass destroys per tenant; the next
// pass goes on.
const retainBatch = 500

// finished are the statuses retention applies to.
var finished = []session.Status{session.StatusApproved, session.StatusRejected, session.StatusExpired, session.StatusError, session.StatusCancelled}

// retain destroys tenant's finished sessions whose last change is older than
// the tenant's retention: the record, the data key (crypto-shredding) and
// the stored files, each audited (session.retention_delete) in the same
// transaction as the record's deletion.
func (s *Scheduler) retain(ctx context.Context, tenant string, repo *session.Repo, rep *Report) error {
	if s.d.Files == nil || s.d.Keys == nil {
		return nil
	}
	pol, err := s.d.Identity.Policy(ctx, tenant)
	if err != nil || pol.KeepSessionsForDays <= 0 {
		return err
	}
	before := s.d.Now().Add(-time.Duration(pol.KeepSessionsForDays) * 24 * time.Hour)
	done := 0
	for _, st := range finished {
		err := repo.Each(ctx, session.Filter{Status: st, UpdatedBefore: before}, func(sess *session.Session) error {
			if done >= retainBatch {
				return errRetainBatchFull
			}
			actx, event := s.d.Audit.Attach(ctx, audit.Event{Tenant: tenant, Actor: audit.Actor{Type: "system", ID: "scheduler"},
				Action: "session.retention_delete", Outcome: audit.Success, Resource: audit.Resource{Type: "session", ID: sess.ID},
				Details: map[string]string{"status": string(sess.Status), "files": strconv.Itoa(len(sess.Files)),
					"keepSessionsForDays": strconv.Itoa(pol.KeepSessionsForDays)}}, session.Collection)
			err := session.Destroy(actx, repo, s.d.Keys, s.d.Files, tenant, sess)
			switch {
			case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
				return nil // changed or deleted meanwhile: the next pass decides again
			case errors.Is(err, session.ErrObjectsLeft):
				s.d.Log.Warn("scheduler: retention left file objects for the sweep", "tenant", tenant, "err", err)
			case err != nil:
				return err
			}
			done++
			rep.Destroyed++
			return event.Commit(ctx)
		})
		if errors.Is(err, errRetainBatchFull) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("retention: %w", err)
		}
	}
	return nil
}

var errRetainBatchFull = errors.New("retention batch full")
