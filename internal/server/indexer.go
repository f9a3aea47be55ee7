package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/idvault/idvault/internal/queue"
)

// indexer is the indexer role. It owns the index topic; until an index is
// configured (the face-vector index is a later issue) it settles each
// event so none piles up, and logs what it skipped.
type indexer struct {
	broker queue.Broker
	log    *slog.Logger
}

func newIndexer(b queue.Broker, log *slog.Logger) *indexer { return &indexer{broker: b, log: log} }

// Run consumes the index topic until ctx is done.
func (ix *indexer) Run(ctx context.Context) error {
	return queue.Consume(ctx, ix.broker, queue.TopicIndex, ix.log, 5*time.Second, func(ctx context.Context, d queue.Delivery) {
		ix.log.Info("indexer: no index configured; event settled", "messageId", d.ID())
		if err := d.Ack(ctx); err != nil {
			ix.log.Warn("indexer: ack", "messageId", d.ID(), "err", err)
		}
	})
}
