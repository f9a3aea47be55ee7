package webhook_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/webhook"
)

func BenchmarkSign(b *testing.B) {
	secret := []byte("whsec_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG")
	for _, size := range []int{256, 1 << 10, 8 << 10, 64 << 10} {
		body := make([]byte, size)
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			now := time.Unix(1700000000, 0)
			for b.Loop() {
				_ = webhook.SignatureHeader(now, body, secret)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	secret := []byte("whsec_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG")
	for _, size := range []int{256, 8 << 10} {
		body := make([]byte, size)
		now := time.Unix(1700000000, 0)
		header := webhook.SignatureHeader(now, body, secret, []byte("whsec_previous"))
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := webhook.Verify(secret, header, body, now, webhook.DefaultTolerance); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDeliveryRoundTrip measures one event from Enqueue to a loopback
// receiver that has verified its signature, one at a time: the delivery
// record and schedule writes, the queue, the worker's claim, signing and
// the HTTP request (settling overlaps the next event).
func BenchmarkDeliveryRoundTrip(b *testing.B) {
	rcv := newReceiver(b, false, time.Now, nil)
	f := newFixture(b, setup{realTime: true, opts: webhook.Options{Policy: loopback}})
	_, sec := f.create(b, "acme", rcv.URL())
	rcv.setSecret("s", sec)
	f.run(b)
	i := 0
	for b.Loop() {
		i++
		f.enqueue(b, "acme", event(fmt.Sprintf("rt-%d", i), webhook.EventSessionCreated))
		if got := rcv.next(b); got.verifyErr["s"] != nil {
			b.Fatal(got.verifyErr["s"])
		}
	}
}

// BenchmarkDeliveryThroughput enqueues events as fast as one caller can
// and reports deliveries per second through Options.Concurrency workers.
func BenchmarkDeliveryThroughput(b *testing.B) {
	rcv := newReceiver(b, false, time.Now, nil)
	f := newFixture(b, setup{realTime: true, opts: webhook.Options{Policy: loopback}})
	f.create(b, "acme", rcv.URL())
	f.run(b)
	ctx := context.Background()
	b.ResetTimer()
	errs := make(chan error, 1)
	go func() {
		for i := range b.N {
			if _, err := f.svc.Enqueue(ctx, "acme", event(fmt.Sprintf("tp-%d", i), webhook.EventSessionCreated)); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range b.N {
		select {
		case err := <-errs:
			b.Fatal(err)
		case <-rcv.ch:
		case <-time.After(30 * time.Second):
			b.Fatal("receiver got no request")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
