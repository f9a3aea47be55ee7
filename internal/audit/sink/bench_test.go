package sink

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

// benchEntries returns n entries with events of about 500 bytes, the size of
// a typical audit event with actor, resource and a few details.
func benchEntries(n int) []Entry {
	entries := make([]Entry, n)
	for i := range entries {
		e := event("acme", int64(i), "record.read", "success")
		e.Data = append(e.Data[:len(e.Data)-1], `,"details":{"fields":"`+strings.Repeat("f", 150)+`"}}`...)
		entries[i] = e
	}
	return entries
}

func reportEvents(b *testing.B, batch int) {
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFile measures appends with an fsync per Write.
func BenchmarkFile(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := newTestFile(b, filepath.Join(b.TempDir(), "audit.ndjson"), FileOptions{})
			entries := benchEntries(batch)
			b.SetBytes(int64(batch * len(entries[0].Data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := f.Write(b.Context(), entries); err != nil {
					b.Fatal(err)
				}
			}
			reportEvents(b, batch)
		})
	}
}

// BenchmarkSyslog measures delivery to a real rsyslog over TLS (loopback;
// rsyslog writes each message to a file).
func BenchmarkSyslog(b *testing.B) {
	ca := testtls.NewCA(b, "bench CA")
	srv := startRsyslog(b, ca, rsyslogOptions{})
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := newTestSyslog(b, srv.addr, ca, nil)
			entries := benchEntries(batch)
			b.SetBytes(int64(batch * len(entries[0].Data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(b.Context(), entries); err != nil {
					b.Fatal(err)
				}
			}
			reportEvents(b, batch)
		})
	}
}

// BenchmarkSyslogFormat measures building messages alone.
func BenchmarkSyslogFormat(b *testing.B) {
	s := formatter(b, 0)
	entries := benchEntries(100)
	b.SetBytes(int64(len(entries) * len(entries[0].Data)))
	b.ReportAllocs()
	for b.Loop() {
		var buf []byte
		for i := range entries {
			var err error
			if buf, err = s.appendEntry(buf, &entries[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportEvents(b, len(entries))
}
