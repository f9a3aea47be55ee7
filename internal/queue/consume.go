package queue

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Consume calls handle with every delivery of topic until ctx ends or the
// broker closes, and returns nil then. A failed Receive (the broker, or the
// store under it, briefly unavailable) is logged and tried again after a
// pause that doubles up to maxPause, instead of ending the consumer and with
// it the process. handle runs with a context that is not cancelled with ctx,
// so a message in progress when ctx ends is finished first.
func Consume(ctx context.Context, b Broker, topic string, log *slog.Logger, maxPause time.Duration, handle func(context.Context, Delivery)) error {
	pause := 50 * time.Millisecond
	for {
		d, err := b.Receive(ctx, topic)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return nil
			}
			log.Warn("queue: receive failed; trying again", "topic", topic, "err", err, "retryIn", pause)
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			pause = min(2*pause, maxPause)
			continue
		}
		pause = 50 * time.Millisecond
		handle(context.WithoutCancel(ctx), d)
	}
}
