package files_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/files/localfs"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "idvault-files-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	bucket, err := localfs.Open(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer bucket.Close()
	root := make([]byte, 32)
	if _, err := rand.Read(root); err != nil {
		log.Fatal(err)
	}
	b, err := barrier.NewAESGCM(root)
	if err != nil {
		log.Fatal(err)
	}
	store := files.New(bucket, b)

	ref := files.Ref{Tenant: "acme", Location: files.Sessions, ID: "session-1-page-1"}
	// Keep sealed in the file's store record: it is needed to read the file.
	sealed, err := store.Put(ctx, ref, strings.NewReader("document page"), 20<<20)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := store.ReadAll(ctx, ref, sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d bytes stored as %d\n", plain, sealed.Size, sealed.StoredSize)
	// Output: document page: 13 bytes stored as 45
}
