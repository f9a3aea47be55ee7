package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// fileLine is one line of the file sink.
type fileLine struct {
	Tenant string          `json:"tenant"`
	Index  int64           `json:"index"`
	Event  json.RawMessage `json:"event"`
}

// readLines parses every line of path strictly: each must be one JSON object
// with exactly the three fields.
func readLines(t testing.TB, path string) []fileLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", path)
	}
	var lines []fileLine
	for line := range bytes.Lines(data) {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var l fileLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if dec.More() {
			t.Fatalf("line %q holds more than one JSON value", line)
		}
		lines = append(lines, l)
	}
	return lines
}

func newTestFile(t testing.TB, path string, opts FileOptions) *File {
	t.Helper()
	f, err := NewFile(path, opts)
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

func TestFileLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	f := newTestFile(t, path, FileOptions{})
	entries := []Entry{
		event("acme", 0, "session.signin", "success"),
		{Tenant: "t\"\n\x00ü", Index: 1, Data: []byte("{\n  \"note\": \"line\\nbreak ✓\",\n  \"n\": [1, 2]\n}")},
		{Tenant: "acme", Index: 2, Data: []byte(`"a string event"`)},
	}
	if err := f.Write(t.Context(), entries[:1]); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(t.Context(), entries[1:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(t.Context(), nil); err != nil {
		t.Fatalf("Write(no entries) = %v", err)
	}
	lines := readLines(t, path)
	if len(lines) != len(entries) {
		t.Fatalf("file has %d lines, want %d", len(lines), len(entries))
	}
	wantEvents := []string{string(entries[0].Data), `{"note":"line\nbreak ✓","n":[1,2]}`, `"a string event"`}
	for i, l := range lines {
		if l.Tenant != entries[i].Tenant || l.Index != entries[i].Index || string(l.Event) != wantEvents[i] {
			t.Errorf("line %d = %s %d %s, want %s %d %s", i, l.Tenant, l.Index, l.Event, entries[i].Tenant, entries[i].Index, wantEvents[i])
		}
	}
}

func TestFilePermissions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		perm    fs.FileMode
		want    fs.FileMode
		wantErr string
	}{
		{name: "default", want: 0o600},
		{name: "group read", perm: 0o640, want: 0o640},
		{name: "world readable refused", perm: 0o644, wantErr: "want 0600 or 0640"},
		{name: "group write refused", perm: 0o660, wantErr: "want 0600 or 0640"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			f, err := NewFile(path, FileOptions{Perm: tt.perm})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewFile(perm %#o) = %v, want %q", tt.perm, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.want {
				t.Errorf("new file has mode %#o, want %#o", fi.Mode().Perm(), tt.want)
			}
		})
	}

	// An existing file that others can read is refused, not used and not
	// silently narrowed.
	wide := filepath.Join(dir, "wide")
	if err := os.WriteFile(wide, []byte("existing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(wide, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFile(wide, FileOptions{}); err == nil || !strings.Contains(err.Error(), "grants more than") {
		t.Errorf("NewFile(existing 0644 file) = %v, want a refusal", err)
	}
	if _, err := NewFile(wide, FileOptions{Perm: 0o640}); err == nil {
		t.Error("NewFile(existing 0644 file, perm 0640) = nil error, want a refusal")
	}
	if fi, err := os.Stat(wide); err != nil || fi.Mode().Perm() != 0o644 || fi.Size() != int64(len("existing\n")) {
		t.Errorf("refused file changed: %v %v", fi, err)
	}
}

// TestFileConcurrentWrites writes large batches from many goroutines: every
// line must parse and each writer's lines must be in its order.
func TestFileConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	f := newTestFile(t, path, FileOptions{})
	const writers, batches, perBatch = 8, 10, 5
	big := strings.Repeat("x", 20_000) // a batch is about 100 KiB, over PIPE_BUF and a page
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			tenant := fmt.Sprintf("tenant-%d", w)
			for b := range batches {
				var batch []Entry
				for i := range perBatch {
					idx := int64(b*perBatch + i)
					batch = append(batch, Entry{Tenant: tenant, Index: idx, Data: fmt.Appendf(nil, `{"w":%d,"i":%d,"pad":%q}`, w, idx, big)})
				}
				if err := f.Write(t.Context(), batch); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != writers*batches*perBatch {
		t.Fatalf("file has %d lines, want %d", len(lines), writers*batches*perBatch)
	}
	next := map[string]int64{}
	for i, l := range lines {
		if l.Index != next[l.Tenant] {
			t.Fatalf("line %d: %s index %d, want %d (lines interleaved or reordered)", i, l.Tenant, l.Index, next[l.Tenant])
		}
		next[l.Tenant]++
	}
}

// TestFileReopen rotates the file as logrotate does: rename, then Reopen.
func TestFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.ndjson")
	f := newTestFile(t, path, FileOptions{})
	write := func(i int64) {
		t.Helper()
		if err := f.Write(t.Context(), []Entry{event("acme", i, "a", "success")}); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	write(1) // before Reopen: still the renamed file
	if err := f.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	write(2)
	if got := readLines(t, rotated); len(got) != 2 || got[0].Index != 0 || got[1].Index != 1 {
		t.Errorf("rotated file holds %+v, want indexes 0 and 1", got)
	}
	if got := readLines(t, path); len(got) != 1 || got[0].Index != 2 {
		t.Errorf("new file holds %+v, want index 2", got)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("new file has mode %#o, want 0600", fi.Mode().Perm())
	}

	// A rotation that leaves a world-readable file in place is refused and
	// the sink keeps writing to the file it has.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("Reopen onto a 0644 file = nil error, want a refusal")
	}
	write(3)
	if got := readLines(t, path+".2"); len(got) != 2 || got[1].Index != 3 {
		t.Errorf("after a refused Reopen the old file holds %+v, want indexes 2 and 3", got)
	}
}

func TestFileInvalidEntriesAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	f, err := NewFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range invalidEntries() {
		t.Run(tt.name, func(t *testing.T) {
			err := f.Write(t.Context(), []Entry{event("acme", 0, "a", "success"), tt.entry})
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, ErrInvalidEntry) || ee.Index != tt.entry.Index {
				t.Fatalf("Write = %v, want an *EntryError for index %d", err, tt.entry.Index)
			}
		})
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("after refused batches the file is %v (err %v), want empty", fi.Size(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := f.Write(t.Context(), []Entry{event("acme", 0, "a", "success")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := f.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close = %v, want ErrClosed", err)
	}
}

func FuzzFileLine(f *testing.F) {
	f.Add("acme", int64(0), []byte(`{"a":1}`))
	f.Add("t\"\n\x00\xff", int64(42), []byte("{\n\"x\": \"\\n\"\r\n}"))
	f.Add("", int64(-1), []byte(`{"a":`))
	f.Fuzz(func(t *testing.T, tenant string, index int64, data []byte) {
		e := Entry{Tenant: tenant, Index: index, Data: data}
		line, err := appendLine([]byte("previous\n"), &e)
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) || string(line) != "previous\n" {
				t.Fatalf("appendLine error %v left %q, want ErrInvalidEntry and the buffer unchanged", err, line)
			}
			return
		}
		line = bytes.TrimPrefix(line, []byte("previous\n"))
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("line %q is not one line", line)
		}
		var l fileLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		want, _ := appendEvent(nil, &e)
		if (utf8.ValidString(tenant) && l.Tenant != tenant) || l.Index != index || !bytes.Equal(l.Event, want) {
			t.Fatalf("line %q decodes to %+v, want %q %d %s", line, l, tenant, index, want)
		}
	})
}
