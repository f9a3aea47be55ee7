package audit_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/testenv"
)

// BenchmarkPipeline measures the whole audit path on the embedded backends:
// 64 concurrent emitters write events to the outbox (each durable before
// Emit returns), while the relay and the consumer move them through the
// queue into the signed log; the clock stops when the last event is in the
// log.
func BenchmarkPipeline(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := testenv.Open(b, queue.Options{})
	em := audit.NewEmitter(e.Backend, e.Barrier, nil)
	skey, vkey, err := auditlog.GenerateKey("bench/audit")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		b.Fatal(err)
	}
	lg, err := auditlog.New(e.Backend, e.Barrier, signer, auditlog.Options{Origin: "bench/audit", Verifier: verifier})
	if err != nil {
		b.Fatal(err)
	}
	relay, err := audit.NewRelay(e.Backend, e.Barrier, e.Broker, em, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	consumer := audit.NewConsumer(e.Broker, e.Backend, e.Barrier, audit.LogAppender(lg), slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	wg.Go(func() { _ = relay.Run(ctx) })
	wg.Go(func() { _ = consumer.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	ev := event("tenant-a", "session.read")
	const emitters = 64
	b.ResetTimer()
	var ew sync.WaitGroup
	for w := range emitters {
		ew.Go(func() {
			for i := w; i < b.N; i += emitters {
				if err := em.Emit(ctx, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	ew.Wait()
	last := auditlog.CursorAfter(int64(b.N) - 2) // the cursor of position N-1
	for {
		page, _, err := lg.Events(ctx, "tenant-a", auditlog.Filter{}, last, 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
