package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/audit/sink"
	"github.com/idvault/idvault/internal/auditlog"
)

func newLog(t *testing.T, f *fixture) *auditlog.Log {
	t.Helper()
	skey, vkey, err := auditlog.GenerateKey("test/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := auditlog.New(f.env.Backend, f.env.Barrier, signer, auditlog.Options{Origin: "test/audit", Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	return lg
}

func appendEntries(t *testing.T, lg *auditlog.Log, tenant string, actions ...string) {
	t.Helper()
	var entries []auditlog.Entry
	for _, a := range actions {
		data, err := json.Marshal(map[string]string{"action": a, "outcome": "success", "tenant": tenant})
		if err != nil {
			t.Fatal(err)
		}
		if a == "not-json" {
			data = []byte("{not json")
		}
		entries = append(entries, auditlog.Entry{Tenant: tenant, ID: tenant + "-" + a, Time: t0, Data: data})
	}
	if _, err := lg.Append(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
}

type line struct {
	Tenant string `json:"tenant"`
	Index  int64  `json:"index"`
	Event  struct {
		Action string `json:"action"`
	} `json:"event"`
}

func readLines(t *testing.T, path string) []line {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []line
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// TestForwarder forwards two tenants' logs to a real file sink: each event
// arrives once and in order, later events follow, a sink that fails keeps
// its place and catches up, and an event the sink refuses is skipped.
func TestForwarder(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	lg := newLog(t, f)
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	file, err := sink.NewFile(path, sink.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = file.Close() })
	fw, err := audit.NewForwarder(lg, f.env.Backend, f.env.Barrier, []sink.Sink{file}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	appendEntries(t, lg, "tenant-a", "a1", "a2")
	appendEntries(t, lg, "tenant-b", "b1")
	if n, err := fw.Once(ctx); err != nil || n != 3 {
		t.Fatalf("Once() = %d, %v; want 3 events", n, err)
	}
	if n, err := fw.Once(ctx); err != nil || n != 0 {
		t.Fatalf("Once() again = %d, %v; want nothing new", n, err)
	}
	appendEntries(t, lg, "tenant-a", "a3", "not-json", "a4")
	if n, err := fw.Once(ctx); err != nil || n != 2 {
		t.Fatalf("Once() after three more = %d, %v; want 2 (one refused as invalid)", n, err)
	}
	got := readLines(t, path)
	want := []string{"tenant-a/a1", "tenant-a/a2", "tenant-b/b1", "tenant-a/a3", "tenant-a/a4"}
	if len(got) != len(want) {
		t.Fatalf("file holds %d lines, want %d", len(got), len(want))
	}
	for i, l := range got {
		if l.Tenant+"/"+l.Event.Action != want[i] {
			t.Errorf("line %d = %s/%s, want %s", i, l.Tenant, l.Event.Action, want[i])
		}
	}

	t.Run("failing sink keeps its place", func(t *testing.T) {
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
		appendEntries(t, lg, "tenant-b", "b2")
		if _, err := fw.Once(ctx); err == nil {
			t.Fatal("Once() into a closed sink = nil, want an error")
		}
		reopened, err := sink.NewFile(path, sink.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = reopened.Close() })
		fw2, err := audit.NewForwarder(lg, f.env.Backend, f.env.Barrier, []sink.Sink{reopened}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		fw2.Poll = time.Millisecond
		if n, err := fw2.Once(ctx); err != nil || n != 1 {
			t.Fatalf("Once() after the sink returned = %d, %v; want the 1 missed event", n, err)
		}
		if lines := readLines(t, path); len(lines) != 6 || lines[5].Event.Action != "b2" {
			t.Errorf("file holds %d lines, want 6 ending with b2", len(lines))
		}
	})
}
