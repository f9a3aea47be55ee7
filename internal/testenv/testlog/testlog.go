// Package testlog captures what code under test logs, so that tests can
// look for the lines they expect and for markers (personal data, key
// material) that must never appear. Only tests import it.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
)

// Buffer collects log output. It is safe for concurrent use, so the
// loggers it gives may be shared by goroutines of the code under test. The
// zero Buffer is empty and ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len returns the number of bytes written so far.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// TextLogger returns a logger that writes every record, debug level
// included, to b in slog's text format.
func (b *Buffer) TextLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// JSONLogger returns a logger that writes every record, debug level
// included, to b in slog's JSON format.
func (b *Buffer) JSONLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
