package defsync

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/workflow"
	"github.com/idvault/idvault/internal/workflow/definition"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// extensions are the file name extensions of definition files. Other files
// are ignored.
var extensions = []string{".yaml", ".yml", ".json"}

// Status is what a pass did with one file.
type Status string

// The statuses of a file.
const (
	// Created: the file's definition was stored as a new, active version.
	Created Status = "created"
	// Unchanged: the file's version is stored with the same content.
	Unchanged Status = "unchanged"
	// Refused: the file was not used; Result.Reason says why.
	Refused Status = "refused"
	// Failed: the store failed; the error Sync returns says how.
	Failed Status = "failed"
)

// Reasons a file is refused, as Result.Reason and the audit event's reason.
const (
	ReasonInvalid    = "invalid definition"
	ReasonStored     = "version stored with other content"
	ReasonNotNext    = "version is not the next one"
	ReasonName       = "file name is not the workflow id"
	ReasonDuplicate  = "several files for one workflow id"
	ReasonBuiltin    = "id of a built-in workflow"
	ReasonWritable   = "writable by group or others"
	ReasonSymlink    = "symbolic link out of the directory"
	ReasonTooLarge   = "larger than the size limit"
	ReasonNotFile    = "not a regular file"
	ReasonUnreadable = "unreadable"
)

// Result is what a pass did with one file or tenant directory.
type Result struct {
	// Path is the file's path under the root directory, slash-separated:
	// "<tenant id>/<file name>", or "<tenant id>" for a refused tenant
	// directory.
	Path string
	// Tenant is the tenant id.
	Tenant string
	// Status is what was done.
	Status Status
	// Reason says why the file was refused (a Reason constant) or failed.
	Reason string
	// Workflow and Version are the definition's id and version, when the
	// file was read as a valid definition.
	Workflow string
	Version  int
	// Problems are the problems of an invalid definition, as
	// definition.Parse reports them.
	Problems []*definition.Problem
}

// Report is what one pass found.
type Report struct {
	// Files holds one result per definition file, and one per refused
	// tenant directory, in directory order.
	Files []Result
	// Ignored are the paths under the root directory, slash-separated, of
	// the entries that are neither tenant directories nor definition files.
	// Names that begin with "." are skipped without being listed.
	Ignored []string
	// UnknownTenants are the names of directories that name no tenant.
	UnknownTenants []string
}

// Count returns how many files of r have status st.
func (r Report) Count(st Status) int {
	n := 0
	for _, f := range r.Files {
		if f.Status == st {
			n++
		}
	}
	return n
}

// Tenants lists the platform's tenants (identity.Service).
type Tenants interface {
	Tenants(ctx context.Context, fn func(identity.Tenant) error) error
}

// Deps are what a Syncer needs; all but Now are required.
type Deps struct {
	// Dir is the root directory (config workflows.dir).
	Dir string
	// Definitions stores the versions.
	Definitions *engine.Definitions
	// Tenants says which tenant directories name a tenant.
	Tenants Tenants
	// Audit records stored versions and refused files.
	Audit *audit.Emitter
	// Log receives what each pass did.
	Log *slog.Logger
	// Now is the clock of the audit events (time.Now when nil).
	Now func() time.Time
}

// ErrInsecureDir means the root directory is writable by group or others;
// no file under it is read.
var ErrInsecureDir = errors.New("defsync: directory writable by group or others")

// Syncer stores the definitions of a directory of files. It is safe for
// concurrent use; passes run one at a time.
type Syncer struct {
	d  Deps
	mu sync.Mutex
	// reported holds, by path, what the last pass recorded about a refused
	// file or an unknown tenant directory, so that one that stays so is
	// logged at warning level and audited once, not on every pass.
	reported map[string]string
}

// New returns a Syncer of d.
func New(d Deps) *Syncer {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Syncer{d: d, reported: map[string]string{}}
}

// Run calls Sync at once and then every interval, which MUST be positive,
// until ctx is done, logging the error of a failed pass. Run only in the
// active scheduler (under its lease), so that one process syncs at a time.
func (s *Syncer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.d.Log.Error("workflow definition files: pass failed", "dir", s.d.Dir, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync makes one pass over the directory and reports what it did with each
// file. A refused file is in the report, not the error: the error is about
// the pass (the directory or the tenant list could not be read, the root
// directory is writable by group or others: ErrInsecureDir) or about the
// store and the audit log failing for some files, whose results say
// Failed; the other files are done all the same.
func (s *Syncer) Sync(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	realRoot, err := filepath.EvalSymlinks(s.d.Dir)
	if err != nil {
		return Report{}, fmt.Errorf("workflow definition files: %w", err)
	}
	fi, err := os.Stat(realRoot)
	if err != nil {
		return Report{}, fmt.Errorf("workflow definition files: %w", err)
	}
	if !fi.IsDir() {
		return Report{}, fmt.Errorf("workflow definition files: %s is not a directory", s.d.Dir)
	}
	if writable(fi) {
		return Report{}, fmt.Errorf("workflow definition files: %s has mode %#o: %w", s.d.Dir, fi.Mode().Perm(), ErrInsecureDir)
	}
	root, err := os.OpenRoot(realRoot)
	if err != nil {
		return Report{}, fmt.Errorf("workflow definition files: %w", err)
	}
	defer func() { _ = root.Close() }()
	tenants := map[string]bool{}
	if err := s.d.Tenants.Tenants(ctx, func(t identity.Tenant) error { tenants[t.ID] = true; return nil }); err != nil {
		return Report{}, fmt.Errorf("workflow definition files: list tenants: %w", err)
	}
	entries, err := os.ReadDir(realRoot)
	if err != nil {
		return Report{}, fmt.Errorf("workflow definition files: %w", err)
	}
	p := &pass{s: s, root: root, realRoot: realRoot, dirs: map[string]bool{realRoot: true}, prev: s.reported,
		next: map[string]string{}}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return p.rep, err
		}
		p.tenantDir(ctx, e, tenants)
	}
	s.reported = p.next
	return p.rep, errors.Join(p.errs...)
}

// pass is one Sync.
type pass struct {
	s        *Syncer
	root     *os.Root
	realRoot string
	// dirs holds, by real path, the directories found not writable by
	// group or others.
	dirs       map[string]bool
	prev, next map[string]string
	rep        Report
	errs       []error
}

// tenantDir syncs the entry e of the root directory.
func (p *pass) tenantDir(ctx context.Context, e fs.DirEntry, tenants map[string]bool) {
	name := e.Name()
	switch {
	case strings.HasPrefix(name, "."):
		return
	case e.Type().IsRegular():
		p.ignore(name)
		return
	case !tenants[name]:
		p.rep.UnknownTenants = append(p.rep.UnknownTenants, name)
		if p.once(name, "unknown tenant") {
			p.s.d.Log.Warn("workflow definition files: directory names no tenant; skipped", "dir", p.s.d.Dir, "path", name)
		}
		return
	}
	r := Result{Path: name, Tenant: name, Status: Refused}
	real, fi, reason, err := p.resolve(filepath.Join(p.realRoot, name))
	if reason != "" || err != nil {
		r.Reason = cmp.Or(reason, ReasonUnreadable)
		p.refuse(ctx, r, r.Reason, err)
		return
	}
	if !fi.IsDir() {
		p.ignore(name)
		return
	}
	entries, err := os.ReadDir(real)
	if err != nil {
		r.Reason = ReasonUnreadable
		p.refuse(ctx, r, r.Reason, err)
		return
	}
	var files []string
	ids := map[string]int{}
	for _, f := range entries {
		switch fn := f.Name(); {
		case strings.HasPrefix(fn, "."):
		case !slices.Contains(extensions, filepath.Ext(fn)):
			p.ignore(name + "/" + fn)
		default:
			files = append(files, fn)
			ids[strings.TrimSuffix(fn, filepath.Ext(fn))]++
		}
	}
	for _, fn := range files {
		if ctx.Err() != nil {
			return
		}
		r := Result{Path: name + "/" + fn, Tenant: name}
		if ids[strings.TrimSuffix(fn, filepath.Ext(fn))] > 1 {
			r.Status, r.Reason = Refused, ReasonDuplicate
			p.refuse(ctx, r, r.Reason, nil)
			continue
		}
		p.file(ctx, r, filepath.Join(real, fn))
	}
}

// file syncs the definition file of r, at path under the real tenant
// directory.
func (p *pass) file(ctx context.Context, r Result, path string) {
	data, reason, err := p.read(path)
	if reason != "" {
		r.Status, r.Reason = Refused, reason
		p.refuse(ctx, r, reason, err)
		return
	}
	sum := sha256.Sum256(data)
	fileHash := hex.EncodeToString(sum[:])
	def, err := definition.Parse(data)
	if err != nil {
		r.Status, r.Reason, r.Problems = Refused, ReasonInvalid, definition.Problems(err)
		p.refuse(ctx, r, ReasonInvalid+" "+fileHash, nil)
		return
	}
	r.Workflow, r.Version = def.ID, def.Version
	name := filepath.Base(path)
	switch {
	case strings.TrimSuffix(name, filepath.Ext(name)) != def.ID:
		r.Status, r.Reason = Refused, ReasonName
		p.refuse(ctx, r, ReasonName+" "+def.ID, nil)
		return
	case isBuiltin(def.ID):
		r.Status, r.Reason = Refused, ReasonBuiltin
		p.refuse(ctx, r, ReasonBuiltin, nil)
		return
	}
	defs := p.s.d.Definitions
	stored, err := defs.Get(ctx, r.Tenant, def.ID, def.Version)
	switch {
	case err == nil && stored.Hash == def.Hash():
		r.Status = Unchanged
		p.rep.Files = append(p.rep.Files, r)
		return
	case err == nil:
		r.Status, r.Reason = Refused, ReasonStored
		p.refuse(ctx, r, ReasonStored+" "+def.Hash(), nil)
		return
	case !errors.Is(err, store.ErrNotFound):
		p.fail(r, err)
		return
	}
	actx, event := p.s.d.Audit.Attach(ctx, audit.Event{Tenant: r.Tenant, Time: p.s.d.Now().UTC(), Actor: scheduler,
		Action: "workflow.create", Outcome: audit.Success, Resource: audit.Resource{Type: "workflow"},
		Details: map[string]string{"workflow": def.ID, "version": strconv.Itoa(def.Version), "hash": def.Hash(), "file": name}},
		engine.DefinitionsCollection)
	_, err = defs.Create(actx, r.Tenant, data)
	switch {
	case errors.Is(err, engine.ErrVersion), errors.Is(err, store.ErrConflict):
		// Another process (an API call, another pass) may have just
		// stored this very version.
		r.Status, r.Reason = Refused, ReasonNotNext
		if stored, gerr := defs.Get(ctx, r.Tenant, def.ID, def.Version); gerr == nil {
			if stored.Hash == def.Hash() {
				r.Status, r.Reason = Unchanged, ""
				p.rep.Files = append(p.rep.Files, r)
				return
			}
			r.Reason = ReasonStored
		}
		p.refuse(ctx, r, r.Reason+" "+def.Hash(), err)
		return
	case err != nil:
		p.fail(r, err)
		return
	}
	if err := event.Commit(ctx); err != nil {
		p.fail(r, err)
		return
	}
	r.Status = Created
	p.rep.Files = append(p.rep.Files, r)
	p.s.d.Log.Info("workflow definition files: version stored", "tenant", r.Tenant, "path", r.Path,
		"workflow", def.ID, "version", def.Version, "hash", def.Hash())
}

func isBuiltin(id string) bool {
	_, ok := workflow.Lookup(id)
	return ok
}

// scheduler is the actor of the events a Syncer records.
var scheduler = audit.Actor{Type: "system", ID: "scheduler"}

// read returns the contents of the file at path, or why it is refused (and
// the error behind ReasonUnreadable).
func (p *pass) read(path string) (data []byte, reason string, err error) {
	real, _, reason, err := p.resolve(path)
	if reason != "" || err != nil {
		return nil, cmp.Or(reason, ReasonUnreadable), err
	}
	rel, err := filepath.Rel(p.realRoot, real)
	if err != nil {
		return nil, ReasonUnreadable, err
	}
	f, err := p.root.Open(rel)
	if err != nil {
		return nil, ReasonUnreadable, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, ReasonUnreadable, err
	case !fi.Mode().IsRegular():
		return nil, ReasonNotFile, nil
	case writable(fi):
		return nil, ReasonWritable, nil
	case fi.Size() > definition.MaxBytes:
		return nil, ReasonTooLarge, nil
	}
	data, err = io.ReadAll(io.LimitReader(f, definition.MaxBytes+1))
	switch {
	case err != nil:
		return nil, ReasonUnreadable, err
	case len(data) > definition.MaxBytes:
		return nil, ReasonTooLarge, nil
	}
	return data, "", nil
}

// resolve returns the real path of path, a path under the real root
// directory, and its FileInfo, or why it is refused: it resolves out of the
// root directory (ReasonSymlink), or it is a directory, or lies under one
// below the root directory, that is writable by group or others
// (ReasonWritable).
func (p *pass) resolve(path string) (real string, fi fs.FileInfo, reason string, err error) {
	real, err = filepath.EvalSymlinks(path)
	if err != nil {
		return "", nil, "", err
	}
	rel, err := filepath.Rel(p.realRoot, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", nil, ReasonSymlink, nil
	}
	dir := p.realRoot
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		dir = filepath.Join(dir, part)
		if p.dirs[dir] {
			continue
		}
		if fi, err = os.Stat(dir); err != nil {
			return "", nil, "", err
		}
		if !fi.IsDir() {
			break // real itself, a file: read checks it once opened
		}
		if writable(fi) {
			return "", nil, ReasonWritable, nil
		}
		p.dirs[dir] = true
	}
	if fi, err = os.Stat(real); err != nil {
		return "", nil, "", err
	}
	return real, fi, "", nil
}

// writable reports whether group or others may write fi.
func writable(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o022 != 0 }

// ignore records an entry that is not a definition file.
func (p *pass) ignore(path string) {
	p.rep.Ignored = append(p.rep.Ignored, path)
	p.s.d.Log.Debug("workflow definition files: not a definition file; ignored", "dir", p.s.d.Dir, "path", path)
}

// once reports whether what, about path, is new since the last pass, and
// remembers it for the next.
func (p *pass) once(path, what string) bool {
	p.next[path] = what
	return p.prev[path] != what
}

// refuse records the refused result r. The first time r's path is refused
// for what (its reason, with what identifies the content refused), the
// refusal is logged at warning level and audited as workflow.sync; on later
// passes it is logged at debug level only. err is the cause of an
// unreadable file.
func (p *pass) refuse(ctx context.Context, r Result, what string, err error) {
	p.rep.Files = append(p.rep.Files, r)
	attrs := []any{"tenant", r.Tenant, "path", r.Path, "reason", r.Reason}
	if r.Workflow != "" {
		attrs = append(attrs, "workflow", r.Workflow, "version", r.Version)
	}
	if len(r.Problems) > 0 {
		attrs = append(attrs, "problems", problemLines(r.Problems))
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if !p.once(r.Path, what) {
		p.s.d.Log.Debug("workflow definition files: file refused", attrs...)
		return
	}
	p.s.d.Log.Warn("workflow definition files: file refused", attrs...)
	outcome := audit.Denied
	if r.Reason == ReasonInvalid || r.Reason == ReasonUnreadable {
		outcome = audit.Failure
	}
	res := audit.Resource{Type: "workflow"}
	details := map[string]string{}
	if _, file, ok := strings.Cut(r.Path, "/"); ok {
		details["file"] = file
	} else {
		details["directory"] = r.Path
	}
	if r.Workflow != "" {
		res.ID = r.Workflow + "@" + strconv.Itoa(r.Version)
		details["workflow"], details["version"] = r.Workflow, strconv.Itoa(r.Version)
	}
	if len(r.Problems) > 0 {
		details["problems"] = strconv.Itoa(len(r.Problems))
	}
	ev := audit.Event{Tenant: r.Tenant, Time: p.s.d.Now().UTC(), Actor: scheduler, Action: "workflow.sync",
		Outcome: outcome, Reason: r.Reason, Resource: res, Details: details}
	if err := p.s.d.Audit.Emit(ctx, ev); err != nil {
		delete(p.next, r.Path) // record it again next pass
		p.errs = append(p.errs, fmt.Errorf("%s: %w", r.Path, err))
	}
}

// fail records r as failed by err, a store or audit error.
func (p *pass) fail(r Result, err error) {
	r.Status, r.Reason = Failed, "store error"
	p.rep.Files = append(p.rep.Files, r)
	p.errs = append(p.errs, fmt.Errorf("%s: %w", r.Path, err))
}

// maxMsg bounds a problem's message in the log: a message may quote a
// value of the file (an id, a misspelt type), which MUST NOT fill the log.
const maxMsg = 160

// problemLines formats problems for the log: field path, position and
// message.
func problemLines(ps []*definition.Problem) []string {
	out := make([]string, len(ps))
	for i, pr := range ps {
		msg := pr.Msg
		if len(msg) > maxMsg {
			msg = strings.ToValidUTF8(msg[:maxMsg], "") + "…"
		}
		out[i] = (&definition.Problem{Line: pr.Line, Col: pr.Col, Path: pr.Path, Msg: msg}).Error()
	}
	return out
}
