package engine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/session"
)

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFourStepWorkflow runs sessions through document → docreader →
// face_match → rule → decision with the stand-ins on loopback, from a
// session holding its files to approved. It reports sessions/s and the CPU
// time per session of the whole process: engine, SQLite store, sealing,
// file reads, the HTTP clients and the in-process stand-in servers.
func BenchmarkFourStepWorkflow(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprint("workers=", workers), func(b *testing.B) {
			f := newFixture(b)
			f.define(b, kycYAML)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = f.newSession(b, "kyc", nil, session.KindDocumentFront, session.KindSelfie)
			}
			var next atomic.Int64
			b.ResetTimer()
			cpu0, t0 := cpuTime(b), time.Now()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= len(ids) {
							return
						}
						if err := f.eng.Handle(context.Background(), message(ids[i])); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/wall.Seconds(), "sessions/s")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/session")
			if s := f.session(b, ids[len(ids)-1]); s.Status != session.StatusApproved {
				b.Fatalf("session = %s %q, want approved", s.Status, s.Reason)
			}
		})
	}
}
