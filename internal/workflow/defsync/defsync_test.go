package defsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/testenv"
	"github.com/idvault/idvault/internal/testenv/testlog"
	"github.com/idvault/idvault/internal/workflow/definition"
	"github.com/idvault/idvault/internal/workflow/defsync"
	"github.com/idvault/idvault/internal/workflow/engine"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// now is the clock of every test.
var now = time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)

type fixture struct {
	dir     string
	backend store.Backend
	barrier barrier.Barrier
	ids     *identity.Service
	defs    *engine.Definitions
	emitter *audit.Emitter
	log     *testlog.Buffer
	syncer  *defsync.Syncer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	e := testenv.Open(t, queue.Options{})
	blinder, err := barrier.NewBlinder(testenv.RandomKey(t))
	if err != nil {
		t.Fatalf("barrier.NewBlinder() = %v", err)
	}
	clock := func() time.Time { return now }
	f := &fixture{dir: t.TempDir(), backend: e.Backend, barrier: e.Barrier, log: &testlog.Buffer{},
		ids:     identity.NewService(e.Backend, e.Barrier, blinder, clock),
		defs:    engine.NewDefinitions(e.Backend, e.Barrier, clock),
		emitter: audit.NewEmitter(e.Backend, e.Barrier, clock)}
	f.syncer = f.newSyncer()
	return f
}

func (f *fixture) newSyncer() *defsync.Syncer {
	return defsync.New(defsync.Deps{Dir: f.dir, Definitions: f.defs, Tenants: f.ids, Audit: f.emitter,
		Log: f.log.JSONLogger(),
		Now: func() time.Time { return now }})
}

// tenant creates a tenant and its directory.
func (f *fixture) tenant(t testing.TB) string {
	t.Helper()
	tn, err := f.ids.CreateTenant(context.Background(), "Tenant")
	if err != nil {
		t.Fatalf("CreateTenant() = %v", err)
	}
	if err := os.Mkdir(filepath.Join(f.dir, tn.ID), 0o755); err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

// write writes data to the file at rel under the directory, mode 0644.
func (f *fixture) write(t testing.TB, rel, data string) string {
	t.Helper()
	path := filepath.Join(f.dir, filepath.FromSlash(rel))
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *fixture) sync(t testing.TB) defsync.Report {
	t.Helper()
	rep, err := f.syncer.Sync(context.Background())
	if err != nil {
		t.Fatalf("Sync() error = %v", err)
	}
	return rep
}

// versions returns the stored versions of workflow id, by version, with
// their hashes and active flags.
func (f *fixture) versions(t *testing.T, tenant, id string) []string {
	t.Helper()
	list, err := f.defs.List(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("List(%q) = %v", id, err)
	}
	var out []string
	for _, s := range list {
		out = append(out, fmt.Sprintf("v%d %s active=%t", s.Definition.Version, s.Hash[:8], s.Active))
	}
	return out
}

// events returns the workflow.* audit events in the outbox.
func (f *fixture) events(t *testing.T) []audit.Event {
	t.Helper()
	var out []audit.Event
	err := audit.ReadOutbox(context.Background(), f.backend, f.barrier, func(ev audit.Event) error {
		if strings.HasPrefix(ev.Action, "workflow.") {
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ReadOutbox() = %v", err)
	}
	return out
}

// def returns a valid definition of workflow id at version, named name.
func def(id string, version int, name string) string {
	return fmt.Sprintf(`# Definitions as code.
id: %s
version: %d
name: %s
start: document
steps:
  - id: document
    type: document
    pages:
      - side: front
    next: approved
  - id: approved
    type: decision
    decision: approved
`, id, version, name)
}

func hash(t *testing.T, data string) string {
	t.Helper()
	d, err := definition.Parse([]byte(data))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	return d.Hash()
}

// results returns path, status and reason of each file of rep.
func results(rep defsync.Report) []string {
	var out []string
	for _, r := range rep.Files {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Path, r.Status, r.Reason)))
	}
	return out
}

func wantResults(t *testing.T, rep defsync.Report, want ...string) {
	t.Helper()
	if got := results(rep); !slices.Equal(got, want) {
		t.Errorf("Sync() files = %q, want %q", got, want)
	}
}

// TestLifecycle follows one file through the cases of the format's
// versioning: a new file is stored and active, the same file (or a new
// layout of it) changes nothing, a new version is stored, an edit without
// a new version or a version that skips one is refused and the stored
// versions stay, and deleting the file changes nothing.
func TestLifecycle(t *testing.T) {
	f := newFixture(t)
	tn := f.tenant(t)
	ctx := context.Background()
	v1 := def("onboarding", 1, "Onboarding")
	path := f.write(t, tn+"/onboarding.yaml", v1)

	wantResults(t, f.sync(t), tn+"/onboarding.yaml created")
	latest, err := f.defs.Latest(ctx, tn, "onboarding")
	if err != nil || latest.Definition.Version != 1 || !latest.Active || latest.Hash != hash(t, v1) {
		t.Fatalf("Latest() = v%d active=%t hash %s, %v; want v1 active with the file's hash", latest.Definition.Version, latest.Active, latest.Hash, err)
	}
	if !latest.CreatedAt.Equal(now) {
		t.Errorf("CreatedAt = %v, want the injected clock's %v", latest.CreatedAt, now)
	}
	evs := f.events(t)
	if len(evs) != 1 {
		t.Fatalf("audit events = %d, want 1 workflow.create", len(evs))
	}
	ev := evs[0]
	if ev.Action != "workflow.create" || ev.Outcome != audit.Success || ev.Tenant != tn ||
		ev.Actor != (audit.Actor{Type: "system", ID: "scheduler"}) || ev.Resource != (audit.Resource{Type: "workflow", ID: "onboarding@000001"}) ||
		ev.Details["file"] != "onboarding.yaml" || ev.Details["workflow"] != "onboarding" || ev.Details["version"] != "1" ||
		ev.Details["hash"] != hash(t, v1) || !ev.Time.Equal(now) {
		t.Errorf("event = %+v, want workflow.create by system/scheduler of onboarding@000001 from onboarding.yaml at %v", ev, now)
	}

	t.Run("same file again", func(t *testing.T) {
		wantResults(t, f.sync(t), tn+"/onboarding.yaml unchanged")
		f.write(t, tn+"/onboarding.yaml", "# Another comment; the same definition.\n"+v1)
		wantResults(t, f.sync(t), tn+"/onboarding.yaml unchanged")
		if got := len(f.events(t)); got != 1 {
			t.Errorf("audit events = %d, want still 1", got)
		}
	})
	t.Run("next version", func(t *testing.T) {
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 2, "Onboarding 2"))
		rep := f.sync(t)
		wantResults(t, rep, tn+"/onboarding.yaml created")
		if r := rep.Files[0]; r.Workflow != "onboarding" || r.Version != 2 {
			t.Errorf("result = %+v, want onboarding version 2", r)
		}
		latest, err := f.defs.Latest(ctx, tn, "onboarding")
		if err != nil || latest.Definition.Version != 2 || latest.Definition.Name != "Onboarding 2" {
			t.Errorf("Latest() = v%d %q, %v; want v2 \"Onboarding 2\"", latest.Definition.Version, latest.Definition.Name, err)
		}
	})
	before := f.versions(t, tn, "onboarding")
	t.Run("edit without a new version", func(t *testing.T) {
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 2, "Onboarding, edited"))
		rep := f.sync(t)
		wantResults(t, rep, tn+"/onboarding.yaml refused "+defsync.ReasonStored)
		if got := f.versions(t, tn, "onboarding"); !slices.Equal(got, before) {
			t.Errorf("versions = %q, want them unchanged: %q", got, before)
		}
		evs := f.events(t)
		last := evs[len(evs)-1]
		if len(evs) != 3 || last.Action != "workflow.sync" || last.Outcome != audit.Denied || last.Reason != defsync.ReasonStored ||
			last.Resource.ID != "onboarding@2" || last.Details["file"] != "onboarding.yaml" || last.Actor.ID != "scheduler" {
			t.Errorf("events = %+v, want a third, workflow.sync denied for onboarding@2 from onboarding.yaml", evs)
		}
		// Refused again: reported, not audited again.
		wantResults(t, f.sync(t), tn+"/onboarding.yaml refused "+defsync.ReasonStored)
		if got := len(f.events(t)); got != 3 {
			t.Errorf("audit events after the same refusal = %d, want still 3", got)
		}
		// Edited again, still refused: audited again.
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 2, "Onboarding, edited twice"))
		wantResults(t, f.sync(t), tn+"/onboarding.yaml refused "+defsync.ReasonStored)
		if got := len(f.events(t)); got != 4 {
			t.Errorf("audit events after another refused edit = %d, want 4", got)
		}
	})
	t.Run("version skipped", func(t *testing.T) {
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 4, "Onboarding 4"))
		wantResults(t, f.sync(t), tn+"/onboarding.yaml refused "+defsync.ReasonNotNext)
		if got := f.versions(t, tn, "onboarding"); !slices.Equal(got, before) {
			t.Errorf("versions = %q, want them unchanged: %q", got, before)
		}
	})
	t.Run("an older version", func(t *testing.T) {
		f.write(t, tn+"/onboarding.yaml", v1)
		wantResults(t, f.sync(t), tn+"/onboarding.yaml unchanged")
	})
	t.Run("deleted", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		rep := f.sync(t)
		wantResults(t, rep)
		if got := f.versions(t, tn, "onboarding"); !slices.Equal(got, before) {
			t.Errorf("versions = %q, want them unchanged: %q", got, before)
		}
	})
}

func TestInvalidDefinition(t *testing.T) {
	const marker = "Confidential-Onboarding-Text"
	tests := []struct {
		name string
		data string
		want []string // each problem as "path line"
	}{
		{name: "yaml syntax", data: "id: onboarding\nversion: 1\nname: " + marker + "\nsteps: [\n", want: []string{" 5"}},
		{name: "invalid field", data: strings.Replace(def("onboarding", 1, marker), "side: front", "side: top", 1),
			want: []string{"steps[0].pages[0].side 10"}},
		{name: "two problems", data: strings.Replace(strings.Replace(def("onboarding", 1, marker), "version: 1", "version: 0", 1),
			"decision: approved", "decision: maybe", 1), want: []string{"version 3", "steps[1].decision 14"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tn := f.tenant(t)
			f.write(t, tn+"/onboarding.yaml", tt.data)
			rep := f.sync(t)
			wantResults(t, rep, tn+"/onboarding.yaml refused "+defsync.ReasonInvalid)
			var got []string
			for _, p := range rep.Files[0].Problems {
				got = append(got, fmt.Sprintf("%s %d", p.Path, p.Line))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems = %q, want %q", got, tt.want)
			}
			if got := f.versions(t, tn, "onboarding"); got != nil {
				t.Errorf("versions = %q, want none", got)
			}
			log := f.log.String()
			for _, p := range rep.Files[0].Problems {
				if want := fmt.Sprintf("line %d", p.Line); !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			if !strings.Contains(log, tn+"/onboarding.yaml") || strings.Contains(log, marker) {
				t.Errorf("log = %s, want the file's path and none of its contents", log)
			}
			evs := f.events(t)
			if len(evs) != 1 || evs[0].Action != "workflow.sync" || evs[0].Outcome != audit.Failure ||
				evs[0].Reason != defsync.ReasonInvalid || evs[0].Details["problems"] != fmt.Sprint(len(tt.want)) ||
				evs[0].Details["file"] != "onboarding.yaml" {
				t.Errorf("events = %+v, want one workflow.sync error (invalid definition) with the problem count", evs)
			}
		})
	}
}

// TestRefusedFiles checks the files that are not read, or not stored,
// whatever they hold, and that a refused file keeps neither the other files
// of its tenant nor other tenants from being stored.
func TestRefusedFiles(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "onboarding.yaml"), []byte(def("onboarding", 1, "Outside")), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		setup  func(t *testing.T, f *fixture, tn string)
		reason string
	}{
		{name: "world-writable file", reason: defsync.ReasonWritable, setup: func(t *testing.T, f *fixture, tn string) {
			chmod(t, f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "Onboarding")), 0o666)
		}},
		{name: "group-writable file", reason: defsync.ReasonWritable, setup: func(t *testing.T, f *fixture, tn string) {
			chmod(t, f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "Onboarding")), 0o664)
		}},
		{name: "symlink out of the directory", reason: defsync.ReasonSymlink, setup: func(t *testing.T, f *fixture, tn string) {
			symlink(t, filepath.Join(outside, "onboarding.yaml"), filepath.Join(f.dir, tn, "onboarding.yaml"))
		}},
		{name: "relative symlink out of the directory", reason: defsync.ReasonSymlink, setup: func(t *testing.T, f *fixture, tn string) {
			rel, err := filepath.Rel(filepath.Join(f.dir, tn), filepath.Join(outside, "onboarding.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			symlink(t, rel, filepath.Join(f.dir, tn, "onboarding.yaml"))
		}},
		{name: "symlink to a world-writable directory", reason: defsync.ReasonWritable, setup: func(t *testing.T, f *fixture, tn string) {
			mkdir(t, filepath.Join(f.dir, tn, ".data"), 0o777)
			f.write(t, tn+"/.data/onboarding.yaml", def("onboarding", 1, "Onboarding"))
			symlink(t, ".data/onboarding.yaml", filepath.Join(f.dir, tn, "onboarding.yaml"))
		}},
		{name: "dangling symlink", reason: defsync.ReasonUnreadable, setup: func(t *testing.T, f *fixture, tn string) {
			symlink(t, "gone.yaml", filepath.Join(f.dir, tn, "onboarding.yaml"))
		}},
		{name: "too large", reason: defsync.ReasonTooLarge, setup: func(t *testing.T, f *fixture, tn string) {
			f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "Onboarding")+"#"+strings.Repeat("x", definition.MaxBytes))
		}},
		{name: "a directory", reason: defsync.ReasonNotFile, setup: func(t *testing.T, f *fixture, tn string) {
			mkdir(t, filepath.Join(f.dir, tn, "onboarding.yaml"), 0o755)
		}},
		{name: "file name is not the id", reason: defsync.ReasonName, setup: func(t *testing.T, f *fixture, tn string) {
			f.write(t, tn+"/onboarding.yaml", def("kyc", 1, "KYC"))
		}},
		{name: "built-in id", reason: defsync.ReasonBuiltin, setup: func(t *testing.T, f *fixture, tn string) {
			f.write(t, tn+"/onboarding.yaml", def("document-selfie-review", 1, "Built in"))
			if err := os.Rename(filepath.Join(f.dir, tn, "onboarding.yaml"), filepath.Join(f.dir, tn, "document-selfie-review.yaml")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tn, other := f.tenant(t), f.tenant(t)
			tt.setup(t, f, tn)
			f.write(t, tn+"/kyc.json", `{"id": "kyc", "version": 1, "name": "KYC", "start": "d", "steps": [
				{"id": "d", "type": "document", "pages": [{"side": "front"}], "next": "ok"},
				{"id": "ok", "type": "decision", "decision": "approved"}]}`)
			f.write(t, other+"/onboarding.yml", def("onboarding", 1, "Other tenant"))
			rep := f.sync(t)
			var refused []defsync.Result
			for _, r := range rep.Files {
				if r.Status == defsync.Refused {
					refused = append(refused, r)
				}
			}
			if len(refused) != 1 || refused[0].Reason != tt.reason || refused[0].Tenant != tn {
				t.Fatalf("Sync() files = %q, want one refused (%s) in tenant %s", results(rep), tt.reason, tn)
			}
			if got := rep.Count(defsync.Created); got != 2 {
				t.Errorf("Sync() created %d files (%q), want the 2 others", got, results(rep))
			}
			for _, w := range []struct{ tenant, id, name string }{{tn, "kyc", "KYC"}, {other, "onboarding", "Other tenant"}} {
				if s, err := f.defs.Latest(context.Background(), w.tenant, w.id); err != nil || s.Definition.Name != w.name {
					t.Errorf("Latest(%s) = %q, %v; want %q", w.id, s.Definition.Name, err, w.name)
				}
			}
			for _, id := range []string{"onboarding", "document-selfie-review"} {
				if got := f.versions(t, tn, id); got != nil {
					t.Errorf("versions of %s = %q, want none", id, got)
				}
			}
			var denied []audit.Event
			for _, ev := range f.events(t) {
				if ev.Action == "workflow.sync" {
					denied = append(denied, ev)
				}
			}
			if len(denied) != 1 || denied[0].Reason != tt.reason || denied[0].Tenant != tn || denied[0].Details["file"] == "" {
				t.Errorf("workflow.sync events = %+v, want one (%s) naming the file", denied, tt.reason)
			}
		})
	}
}

func TestDirectories(t *testing.T) {
	t.Run("unknown tenant and ignored entries", func(t *testing.T) {
		f := newFixture(t)
		tn := f.tenant(t)
		mkdir(t, filepath.Join(f.dir, "no-such-tenant"), 0o755)
		f.write(t, "no-such-tenant/onboarding.yaml", def("onboarding", 1, "Nobody's"))
		f.write(t, "README.md", "Workflows of every tenant.")
		f.write(t, tn+"/notes.txt", "not a definition")
		f.write(t, tn+"/.onboarding.yaml.swp", "editor state")
		mkdir(t, filepath.Join(f.dir, tn, "drafts"), 0o755)
		f.write(t, tn+"/drafts/onboarding.yaml", def("onboarding", 1, "Draft"))
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "Onboarding"))
		rep := f.sync(t)
		wantResults(t, rep, tn+"/onboarding.yaml created")
		if !slices.Equal(rep.UnknownTenants, []string{"no-such-tenant"}) {
			t.Errorf("UnknownTenants = %q, want [no-such-tenant]", rep.UnknownTenants)
		}
		want := []string{"README.md", tn + "/drafts", tn + "/notes.txt"}
		slices.Sort(want) // directory order
		if !slices.Equal(rep.Ignored, want) {
			t.Errorf("Ignored = %q, want %q", rep.Ignored, want)
		}
		if _, err := f.ids.Tenant(context.Background(), "no-such-tenant"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Tenant(no-such-tenant) = %v, want store.ErrNotFound: not created", err)
		}
		if s, err := f.defs.Latest(context.Background(), tn, "onboarding"); err != nil || s.Definition.Name != "Onboarding" {
			t.Errorf("Latest() = %q, %v; want the tenant's own file, not the draft", s.Definition.Name, err)
		}
		if n := strings.Count(f.log.String(), "names no tenant"); n != 1 {
			t.Errorf("log warns %d times of the unknown tenant, want 1", n)
		}
		f.sync(t)
		if n := strings.Count(f.log.String(), "names no tenant"); n != 1 {
			t.Errorf("after a second pass, log warns %d times of the unknown tenant, want still 1", n)
		}
	})
	t.Run("duplicate ids", func(t *testing.T) {
		f := newFixture(t)
		tn := f.tenant(t)
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "YAML"))
		f.write(t, tn+"/onboarding.json", `{"id": "onboarding"}`)
		wantResults(t, f.sync(t), tn+"/onboarding.json refused "+defsync.ReasonDuplicate, tn+"/onboarding.yaml refused "+defsync.ReasonDuplicate)
	})
	t.Run("symlinks inside the directory", func(t *testing.T) {
		// The layout of a Kubernetes ConfigMap volume: files are links
		// through a hidden directory.
		f := newFixture(t)
		tn := f.tenant(t)
		mkdir(t, filepath.Join(f.dir, tn, "..2031_02_03"), 0o755)
		f.write(t, tn+"/..2031_02_03/onboarding.yaml", def("onboarding", 1, "Onboarding"))
		symlink(t, "..2031_02_03", filepath.Join(f.dir, tn, "..data"))
		symlink(t, "..data/onboarding.yaml", filepath.Join(f.dir, tn, "onboarding.yaml"))
		wantResults(t, f.sync(t), tn+"/onboarding.yaml created")
	})
	t.Run("writable tenant directory", func(t *testing.T) {
		f := newFixture(t)
		tn, other := f.tenant(t), f.tenant(t)
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "Onboarding"))
		f.write(t, other+"/onboarding.yaml", def("onboarding", 1, "Onboarding"))
		chmod(t, filepath.Join(f.dir, tn), 0o775)
		rep := f.sync(t)
		if got := results(rep); !slices.Contains(got, tn+" refused "+defsync.ReasonWritable) || !slices.Contains(got, other+"/onboarding.yaml created") || len(got) != 2 {
			t.Errorf("Sync() files = %q, want %s refused and the other tenant's file created", got, tn)
		}
		evs := f.events(t)
		if !slices.ContainsFunc(evs, func(ev audit.Event) bool {
			return ev.Action == "workflow.sync" && ev.Tenant == tn && ev.Details["directory"] == tn && ev.Reason == defsync.ReasonWritable
		}) {
			t.Errorf("events = %+v, want a workflow.sync denial of the directory", evs)
		}
	})
	t.Run("tenant directory linked out", func(t *testing.T) {
		f := newFixture(t)
		tn := f.tenant(t)
		if err := os.Remove(filepath.Join(f.dir, tn)); err != nil {
			t.Fatal(err)
		}
		outside := t.TempDir()
		if err := os.WriteFile(filepath.Join(outside, "onboarding.yaml"), []byte(def("onboarding", 1, "Outside")), 0o644); err != nil {
			t.Fatal(err)
		}
		symlink(t, outside, filepath.Join(f.dir, tn))
		wantResults(t, f.sync(t), tn+" refused "+defsync.ReasonSymlink)
	})
	t.Run("writable root directory", func(t *testing.T) {
		f := newFixture(t)
		tn := f.tenant(t)
		f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "Onboarding"))
		chmod(t, f.dir, 0o777)
		if _, err := f.syncer.Sync(context.Background()); !errors.Is(err, defsync.ErrInsecureDir) {
			t.Errorf("Sync() error = %v, want ErrInsecureDir", err)
		}
		if got := f.versions(t, tn, "onboarding"); got != nil {
			t.Errorf("versions = %q, want none", got)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		f := newFixture(t)
		f.dir = filepath.Join(f.dir, "missing")
		if _, err := f.newSyncer().Sync(context.Background()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Sync() error = %v, want os.ErrNotExist", err)
		}
	})
}

// TestConcurrentPasses runs two syncers, as two scheduler processes would
// for a moment around a lease change: one stores each version, and the
// other finds it stored.
func TestConcurrentPasses(t *testing.T) {
	f := newFixture(t)
	tn := f.tenant(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		f.write(t, tn+"/"+id+".yaml", def(id, 1, id))
	}
	other := f.newSyncer()
	var wg sync.WaitGroup
	reps := make([]defsync.Report, 2)
	errs := make([]error, 2)
	for i, s := range []*defsync.Syncer{f.syncer, other} {
		wg.Go(func() { reps[i], errs[i] = s.Sync(context.Background()) })
	}
	wg.Wait()
	for i := range reps {
		if errs[i] != nil || reps[i].Count(defsync.Refused) != 0 {
			t.Errorf("Sync() #%d = %q, %v; want no refusal and no error", i, results(reps[i]), errs[i])
		}
	}
	if got := reps[0].Count(defsync.Created) + reps[1].Count(defsync.Created); got != 4 {
		t.Errorf("created %d versions in all, want 4", got)
	}
	if got := len(f.events(t)); got != 4 {
		t.Errorf("audit events = %d, want 4", got)
	}
}

// TestRun checks that Run syncs at once and stops with its context.
func TestRun(t *testing.T) {
	f := newFixture(t)
	tn := f.tenant(t)
	f.write(t, tn+"/onboarding.yaml", def("onboarding", 1, "Onboarding"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.syncer.Run(ctx, time.Hour)
	}()
	<-f.emitter.Wake() // the workflow.create of the first pass
	cancel()
	<-done
	if got := f.versions(t, tn, "onboarding"); len(got) != 1 {
		t.Errorf("versions = %q, want 1", got)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
