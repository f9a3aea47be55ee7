package sqlitequeue_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/sqlitedb"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "idvault")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The database is shared with the embedded store and owned by the caller.
	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "idvault.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	broker, err := sqlitequeue.New(ctx, db, queue.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close() // before db.Close

	if err := broker.Publish(ctx, queue.TopicWorkflow, []byte(`{"session":"s1","step":"doc"}`)); err != nil {
		log.Fatal(err)
	}
	d, err := broker.Receive(ctx, queue.TopicWorkflow)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("attempt %d: %s\n", d.Attempt(), d.Body())
	if err := d.Ack(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: attempt 1: {"session":"s1","step":"doc"}
}
