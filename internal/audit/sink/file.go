package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// FileOptions configures a File.
type FileOptions struct {
	// Perm is the mode a new file is created with: 0600 (the default, when
	// zero) or 0640, for a log shipper that reads through the file's group.
	// An existing file whose mode grants more than Perm is refused.
	Perm fs.FileMode
}

// File appends entries to a file as NDJSON (see the package doc). It is safe
// for concurrent use; Write calls are serialized, so their lines never
// interleave. The file MUST have no other writer: a failed write is undone by
// truncating the file to its size before the write.
type File struct {
	path string
	perm fs.FileMode

	mu     sync.Mutex
	f      *os.File
	closed bool
}

var _ Sink = (*File)(nil)

// NewFile opens path for appending, creating it with opts.Perm when absent.
// It fails when path is not a regular file or grants more than opts.Perm.
func NewFile(path string, opts FileOptions) (*File, error) {
	perm := opts.Perm
	if perm == 0 {
		perm = 0o600
	}
	if perm != 0o600 && perm != 0o640 {
		return nil, fmt.Errorf("file sink: permission %#o: want 0600 or 0640", perm)
	}
	f, err := openAppend(path, perm)
	if err != nil {
		return nil, err
	}
	return &File{path: path, perm: perm, f: f}, nil
}

func openAppend(path string, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
	if err != nil {
		return nil, fmt.Errorf("file sink: open: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("file sink: stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("file sink: %s is not a regular file", path)
	}
	if fi.Mode().Perm()&^perm != 0 {
		_ = f.Close()
		return nil, fmt.Errorf("file sink: %s has mode %#o, which grants more than %#o", path, fi.Mode().Perm(), perm)
	}
	return f, nil
}

// Name returns "file".
func (s *File) Name() string { return "file" }

// Write appends one line per entry in a single write and fsyncs the file.
// When an entry is invalid it writes nothing and returns an *EntryError.
// When the write fails it truncates the file back, so no partial line
// remains, and returns the error.
func (s *File) Write(ctx context.Context, entries []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	var buf []byte
	for i := range entries {
		var err error
		if buf, err = appendLine(buf, &entries[i]); err != nil {
			return err
		}
	}
	if len(buf) == 0 {
		return nil
	}
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("file sink: stat: %w", err)
	}
	if _, err := s.f.Write(buf); err != nil {
		if terr := s.f.Truncate(fi.Size()); terr != nil {
			return fmt.Errorf("file sink: write: %w (and undo: %w)", err, terr)
		}
		return fmt.Errorf("file sink: write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("file sink: fsync: %w", err)
	}
	return nil
}

// appendLine appends e as one NDJSON line to dst.
func appendLine(dst []byte, e *Entry) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `{"tenant":`...)
	tenant, err := json.Marshal(e.Tenant)
	if err != nil {
		return dst[:start], fmt.Errorf("file sink: encode tenant: %w", err)
	}
	dst = append(dst, tenant...)
	dst = append(dst, `,"index":`...)
	dst = strconv.AppendInt(dst, e.Index, 10)
	dst = append(dst, `,"event":`...)
	dst, err = appendEvent(dst, e)
	if err != nil {
		return dst[:start], err
	}
	return append(dst, "}\n"...), nil
}

// Reopen opens the path again and writes there from now on, closing the old
// file. Call it after logrotate has renamed the file (on SIGHUP). On error
// the sink keeps writing to the old file.
func (s *File) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	f, err := openAppend(s.path, s.perm)
	if err != nil {
		return err
	}
	old := s.f
	s.f = f
	if err := old.Close(); err != nil {
		return fmt.Errorf("file sink: close rotated file: %w", err)
	}
	return nil
}

// Close closes the file. It is safe to call more than once.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink: close: %w", err)
	}
	return nil
}
