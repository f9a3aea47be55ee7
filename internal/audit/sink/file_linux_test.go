package sink

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFileRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opening a FIFO for writing blocks until a reader opens it: open one.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := NewFile(fifo, FileOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("NewFile(FIFO) = %v, want not a regular file", err)
	}
}

// TestFileWriteFailureLeavesNoPartialLine makes the disk "full" part way
// through a batch (RLIMIT_FSIZE, so write(2) stores some bytes and then
// fails with EFBIG): Write must fail and leave the file as it was, so the
// retry appends whole lines. RLIMIT_FSIZE is per process; this test must not
// run in parallel with others.
func TestFileWriteFailureLeavesNoPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	f := newTestFile(t, path, FileOptions{})
	if err := f.Write(t.Context(), []Entry{event("acme", 0, "a", "success")}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	batch := []Entry{event("acme", 1, "a", "success"), event("acme", 2, "a", "success")}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limit := syscall.Rlimit{Cur: uint64(fi.Size()) + 100, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	err = f.Write(t.Context(), batch)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Write over the file size limit = %v, want EFBIG", err)
	}
	if after, err := os.Stat(path); err != nil || after.Size() != fi.Size() {
		t.Fatalf("after the failed write the file is %d bytes (err %v), want %d", after.Size(), err, fi.Size())
	}
	if err := f.Write(t.Context(), batch); err != nil {
		t.Fatalf("retry: %v", err)
	}
	lines := readLines(t, path)
	if len(lines) != 3 || lines[1].Index != 1 || lines[2].Index != 2 {
		t.Errorf("file holds %+v, want indexes 0, 1, 2", lines)
	}
}
