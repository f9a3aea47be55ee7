// Package filestest checks that a Go Cloud blob bucket has the semantics the
// files package relies on. Every bucket backend (the local directory, S3,
// Azure Blob, GCS) runs Run in its tests.
//
// The properties: an object is invisible until its writer's Close succeeds;
// a write whose context is cancelled before Close leaves nothing behind and
// leaves an earlier object at the same key intact; a write replaces an
// existing object whole; Reader.Size reports the stored length; Delete removes
// an object; and a missing object reads, stats and deletes as
// gcerrors.NotFound.
package filestest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Run runs the conformance suite. newBucket returns a fresh, empty bucket for
// one subtest; it registers its own clean-up with t.Cleanup.
func Run(t *testing.T, newBucket func(t *testing.T) *blob.Bucket) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b *blob.Bucket)
	}{
		{"WriteInvisibleUntilClose", testWriteInvisibleUntilClose},
		{"AbortedWriteInvisible", testAbortedWriteInvisible},
		{"AbortedOverwriteKeepsOld", testAbortedOverwriteKeepsOld},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"ListNested", testListNested},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newBucket(t))
		})
	}
}

const key = "files/tenant-a/object-1"

func write(t *testing.T, b *blob.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.WriteAll(t.Context(), key, data, &blob.WriterOptions{ContentType: "application/octet-stream"}); err != nil {
		t.Fatalf("WriteAll(%q) = %v, want nil", key, err)
	}
}

func readBack(t *testing.T, b *blob.Bucket, key string, want []byte) {
	t.Helper()
	r, err := b.NewReader(t.Context(), key, nil)
	if err != nil {
		t.Fatalf("NewReader(%q) = %v, want nil", key, err)
	}
	defer r.Close()
	if got := r.Size(); got != int64(len(want)) {
		t.Errorf("Reader.Size() = %d, want %d", got, len(want))
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("ReadAll(%q) = %v, want nil", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("content of %q = %d bytes %.16q, want %d bytes %.16q", key, len(got), got, len(want), want)
	}
}

func wantNotFound(t *testing.T, b *blob.Bucket, key string) {
	t.Helper()
	ok, err := b.Exists(t.Context(), key)
	if err != nil || ok {
		t.Errorf("Exists(%q) = %v, %v, want false, nil", key, ok, err)
	}
	if _, err := b.NewReader(t.Context(), key, nil); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("NewReader(%q) code = %v (%v), want NotFound", key, gcerrors.Code(err), err)
	}
}

func listAll(t *testing.T, b *blob.Bucket) []string {
	t.Helper()
	var keys []string
	it := b.List(nil)
	for {
		obj, err := it.Next(t.Context())
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatalf("List: Next() = %v, want nil", err)
		}
		keys = append(keys, obj.Key)
	}
}

// payload returns n bytes spanning several driver buffers.
func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*31) ^ seed
	}
	return p
}

func testWriteInvisibleUntilClose(t *testing.T, b *blob.Bucket) {
	data := payload(3<<20+5, 1)
	w, err := b.NewWriter(t.Context(), key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatalf("NewWriter = %v, want nil", err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write = %v, want nil", err)
	}
	wantNotFound(t, b, key)
	if err := w.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	readBack(t, b, key, data)
}

func testAbortedWriteInvisible(t *testing.T, b *blob.Bucket) {
	ctx, cancel := context.WithCancel(t.Context())
	w, err := b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatalf("NewWriter = %v, want nil", err)
	}
	if _, err := w.Write(payload(1<<20, 2)); err != nil {
		t.Fatalf("Write = %v, want nil", err)
	}
	cancel()
	if err := w.Close(); err == nil {
		t.Errorf("Close after cancel = nil, want an error")
	}
	wantNotFound(t, b, key)
	if keys := listAll(t, b); len(keys) != 0 {
		t.Errorf("List after aborted write = %q, want none", keys)
	}
}

func testAbortedOverwriteKeepsOld(t *testing.T, b *blob.Bucket) {
	old := payload(70000, 3)
	write(t, b, key, old)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatalf("NewWriter = %v, want nil", err)
	}
	if _, err := w.Write(payload(10, 4)); err != nil {
		t.Fatalf("Write = %v, want nil", err)
	}
	cancel()
	if err := w.Close(); err == nil {
		t.Errorf("Close after cancel = nil, want an error")
	}
	readBack(t, b, key, old)
}

func testOverwrite(t *testing.T, b *blob.Bucket) {
	write(t, b, key, payload(100000, 5))
	short := payload(7, 6)
	write(t, b, key, short)
	readBack(t, b, key, short)
	write(t, b, key, nil)
	readBack(t, b, key, nil)
}

func testDelete(t *testing.T, b *blob.Bucket) {
	write(t, b, key, payload(10, 7))
	if err := b.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete = %v, want nil", err)
	}
	wantNotFound(t, b, key)
	if err := b.Delete(t.Context(), key); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("second Delete code = %v (%v), want NotFound", gcerrors.Code(err), err)
	}
}

func testNotFound(t *testing.T, b *blob.Bucket) {
	wantNotFound(t, b, key)
	if _, err := b.Attributes(t.Context(), key); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("Attributes code = %v (%v), want NotFound", gcerrors.Code(err), err)
	}
	if err := b.Delete(t.Context(), key); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("Delete code = %v (%v), want NotFound", gcerrors.Code(err), err)
	}
}

func testListNested(t *testing.T, b *blob.Bucket) {
	want := []string{"files/t1/a", "files/t1/b", "sessions/t2/c"}
	for i, k := range want {
		write(t, b, k, payload(i+1, 8))
	}
	got := listAll(t, b)
	if len(got) != len(want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("List = %q, want %q", got, want)
			break
		}
	}
}
