package files_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"gocloud.dev/blob"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/files"
	"github.com/idvault/idvault/internal/files/filestest"
	"github.com/idvault/idvault/internal/files/localfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type env struct {
	store  *files.Store
	bucket *blob.Bucket
	dir    string
}

// newEnv returns a Store over a local directory bucket that it reads and
// writes through the bucket only.
func newEnv(t testing.TB) env { return newEnvIn(t, false) }

// newEnvIn returns a Store over a local directory bucket; with direct, the
// Store also knows the directory (files.LocalDir), as the server makes it.
func newEnvIn(t testing.TB, direct bool) env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bucket")
	bucket, err := localfs.Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("localfs.Open(%q) = %v, want nil", dir, err)
	}
	t.Cleanup(func() { _ = bucket.Close() })
	var opts []files.Option
	if direct {
		opts = append(opts, files.LocalDir(dir))
	}
	return env{store: files.New(bucket, newBarrier(t), opts...), bucket: bucket, dir: dir}
}

// forModes runs test against a Store that goes through the bucket for
// everything, then against one that writes and reads the local directory's
// files directly: test's newEnv makes the Store of its mode.
func forModes(t *testing.T, test func(t *testing.T, newEnv func(testing.TB) env)) {
	t.Run("bucket", func(t *testing.T) { test(t, newEnv) })
	t.Run("direct", func(t *testing.T) {
		test(t, func(tb testing.TB) env { return newEnvIn(tb, true) })
	})
}

func newBarrier(t testing.TB) *barrier.AESGCM {
	t.Helper()
	b, err := barrier.NewAESGCM(randomBytes(t, 32))
	if err != nil {
		t.Fatalf("NewAESGCM = %v, want nil", err)
	}
	return b
}

// objectPath is where the fileblob driver keeps the object for ref.
func (e env) objectPath(ref files.Ref) string {
	return filepath.Join(e.dir, string(ref.Location), ref.Tenant, ref.ID)
}

func (e env) put(t *testing.T, ref files.Ref, data []byte) files.Sealed {
	t.Helper()
	s, err := e.store.Put(t.Context(), ref, bytes.NewReader(data), 64<<20)
	if err != nil {
		t.Fatalf("Put(%v, %d bytes) = %v, want nil", ref, len(data), err)
	}
	return s
}

func (e env) wantTampered(t *testing.T, ref files.Ref, s files.Sealed) {
	t.Helper()
	got, err := e.store.ReadAll(t.Context(), ref, s)
	if !errors.Is(err, files.ErrTampered) {
		t.Errorf("ReadAll(%v) = %d bytes, %v, want ErrTampered", ref, len(got), err)
	}
	if got != nil {
		t.Errorf("ReadAll(%v) returned %d bytes with an error, want none", ref, len(got))
	}
}

// listKeys returns every key in the bucket.
func (e env) listKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	it := e.bucket.List(nil)
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

// regularFiles returns every regular file under the bucket directory.
func (e env) regularFiles(t *testing.T) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WalkDir(%q) = %v, want nil", e.dir, err)
	}
	return paths
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatalf("rand.Read = %v", err)
	}
	return p
}

var ref1 = files.Ref{Tenant: "tenant-a", Location: files.Sessions, ID: "file-1"}

func TestBucketConformance(t *testing.T) {
	filestest.Run(t, func(t *testing.T) *blob.Bucket {
		return newEnv(t).bucket
	})
}

func TestRoundTrip(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 1<<20 + 7} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				data := randomBytes(t, n)
				ref := files.Ref{Tenant: "tenant-a", Location: files.Files, ID: fmt.Sprintf("size-%d", n)}
				s := e.put(t, ref, data)
				if s.Size != int64(n) {
					t.Errorf("Put: Size = %d, want %d", s.Size, n)
				}
				info, err := os.Stat(e.objectPath(ref))
				if err != nil {
					t.Fatalf("Stat(object) = %v, want nil", err)
				}
				if info.Size() != s.StoredSize {
					t.Errorf("object is %d bytes, want StoredSize %d", info.Size(), s.StoredSize)
				}
				got, err := e.store.ReadAll(t.Context(), ref, s)
				if err != nil {
					t.Fatalf("ReadAll = %v, want nil", err)
				}
				if !bytes.Equal(got, data) {
					t.Errorf("ReadAll = %d bytes, want the %d bytes put", len(got), len(data))
				}
			})
		}
	})
}

func TestNoPlaintextOnDisk(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		marker := []byte("IDVAULT-PLAINTEXT-MARKER-7f3a")
		data := bytes.Repeat(marker, (200<<10)/len(marker))
		s := e.put(t, ref1, data)
		e.put(t, files.Ref{Tenant: "tenant-a", Location: files.Tmp, ID: "small"}, marker)
		paths := e.regularFiles(t)
		if len(paths) != 2 {
			t.Errorf("bucket holds files %q, want exactly the 2 objects", paths)
		}
		for _, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("ReadFile(%q) = %v", p, err)
			}
			if bytes.Contains(raw, marker) || bytes.Contains(raw, marker[:8]) {
				t.Errorf("%s contains plaintext", p)
			}
		}
		if bytes.Contains(s.WrappedKey, marker[:8]) {
			t.Errorf("WrappedKey contains plaintext")
		}
	})
}

func TestTamperedObject(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		const n = 2*64<<10 + 100 // three DARE packages, the last one short
		const pkg = 16 + 64<<10 + 16
		tests := []struct {
			name   string
			mutate func(raw []byte) []byte
		}{
			{"flip first byte", flipAt(0)},
			{"flip cipher suite", flipAt(1)},
			{"flip length", flipAt(2)},
			{"flip final flag", flipAt(4)},
			{"flip nonce", flipAt(15)},
			{"flip first ciphertext byte", flipAt(16)},
			{"flip first tag", flipAt(pkg - 1)},
			{"flip second header", flipAt(pkg)},
			{"flip middle", flipAt(pkg + 30000)},
			{"flip last byte", func(raw []byte) []byte { raw[len(raw)-1] ^= 1; return raw }},
			{"truncate to zero", func([]byte) []byte { return nil }},
			{"truncate last byte", func(raw []byte) []byte { return raw[:len(raw)-1] }},
			{"truncate at package boundary", func(raw []byte) []byte { return raw[:2*pkg] }},
			{"append byte", func(raw []byte) []byte { return append(raw, 0) }},
			{"append copy of last package", func(raw []byte) []byte { return append(raw, raw[2*pkg:]...) }},
			{"swap packages", func(raw []byte) []byte {
				out := append([]byte(nil), raw[pkg:2*pkg]...)
				out = append(out, raw[:pkg]...)
				return append(out, raw[2*pkg:]...)
			}},
			{"drop middle package", func(raw []byte) []byte { return append(raw[:pkg:pkg], raw[2*pkg:]...) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t)
				data := randomBytes(t, n)
				s := e.put(t, ref1, data)
				path := e.objectPath(ref1)
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("ReadFile = %v", err)
				}
				if err := os.WriteFile(path, tt.mutate(raw), 0o600); err != nil {
					t.Fatalf("WriteFile = %v", err)
				}
				e.wantTampered(t, ref1, s)
			})
		}
	})
}

func flipAt(off int) func([]byte) []byte {
	return func(raw []byte) []byte {
		raw[off] ^= 0x01
		return raw
	}
}

func TestReplacedObject(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		ref2 := files.Ref{Tenant: "tenant-a", Location: files.Sessions, ID: "file-2"}
		s1 := e.put(t, ref1, randomBytes(t, 5000))
		e.put(t, ref2, randomBytes(t, 5000))
		other, err := os.ReadFile(e.objectPath(ref2))
		if err != nil {
			t.Fatalf("ReadFile = %v", err)
		}
		if err := os.WriteFile(e.objectPath(ref1), other, 0o600); err != nil {
			t.Fatalf("WriteFile = %v", err)
		}
		e.wantTampered(t, ref1, s1)
	})
}

func TestReplacedByEmptyFile(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		s := e.put(t, ref1, randomBytes(t, 10))
		if err := os.WriteFile(e.objectPath(ref1), nil, 0o600); err != nil {
			t.Fatalf("WriteFile = %v", err)
		}
		e.wantTampered(t, ref1, s)
	})
}

func TestSealedMismatch(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		ref2 := files.Ref{Tenant: "tenant-a", Location: files.Sessions, ID: "file-2"}
		otherTenant := files.Ref{Tenant: "tenant-b", Location: ref1.Location, ID: ref1.ID}
		otherLocation := files.Ref{Tenant: ref1.Tenant, Location: files.Persons, ID: ref1.ID}
		data := randomBytes(t, 3000)
		s1 := e.put(t, ref1, data)
		s2 := e.put(t, ref2, randomBytes(t, 3000))
		// Give ref1's object to the other refs, so only the Sealed can be wrong.
		for _, r := range []files.Ref{otherTenant, otherLocation} {
			e.put(t, r, data)
			raw, err := os.ReadFile(e.objectPath(ref1))
			if err != nil {
				t.Fatalf("ReadFile = %v", err)
			}
			if err := os.WriteFile(e.objectPath(r), raw, 0o600); err != nil {
				t.Fatalf("WriteFile = %v", err)
			}
		}

		tests := []struct {
			name   string
			ref    files.Ref
			sealed func() files.Sealed
		}{
			{"swapped wrapped key", ref1, func() files.Sealed { s := s1; s.WrappedKey = s2.WrappedKey; return s }},
			{"other file's sealed", ref1, func() files.Sealed { return s2 }},
			{"other tenant", otherTenant, func() files.Sealed { return s1 }},
			{"other location", otherLocation, func() files.Sealed { return s1 }},
			{"plain digest changed", ref1, func() files.Sealed { s := s1; s.PlainSHA256[3] ^= 1; return s }},
			{"stored digest changed", ref1, func() files.Sealed { s := s1; s.StoredSHA256[31] ^= 1; return s }},
			{"size changed", ref1, func() files.Sealed { s := s1; s.Size--; s.StoredSize--; return s }},
			{"stored size changed", ref1, func() files.Sealed { s := s1; s.StoredSize++; return s }},
			{"negative size", ref1, func() files.Sealed { s := s1; s.Size = -1; return s }},
			{"wrapped key flipped", ref1, func() files.Sealed {
				s := s1
				s.WrappedKey = bytes.Clone(s1.WrappedKey)
				s.WrappedKey[len(s.WrappedKey)-1] ^= 1
				return s
			}},
			{"no wrapped key", ref1, func() files.Sealed { s := s1; s.WrappedKey = nil; return s }},
			{"zero sealed", ref1, func() files.Sealed { return files.Sealed{} }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e.wantTampered(t, tt.ref, tt.sealed())
			})
		}
		if got, err := e.store.ReadAll(t.Context(), ref1, s1); err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadAll(ref1, s1) = %d bytes, %v, want the original %d bytes", len(got), err, len(data))
		}
	})
}

func TestWrongRootKey(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		s := e.put(t, ref1, []byte("hello"))
		e.store = files.New(e.bucket, newBarrier(t)) // same bucket, another root key
		e.wantTampered(t, ref1, s)
	})
}

func TestTooLarge(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		tests := []struct {
			name     string
			size     int
			maxBytes int64
		}{
			{"one over", 1001, 1000},
			{"many packages over", 300 << 10, 100 << 10},
			{"zero allowed", 1, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t)
				_, err := e.store.Put(t.Context(), ref1, bytes.NewReader(randomBytes(t, tt.size)), tt.maxBytes)
				if !errors.Is(err, files.ErrTooLarge) {
					t.Errorf("Put(%d bytes, max %d) = %v, want ErrTooLarge", tt.size, tt.maxBytes, err)
				}
				if keys := e.listKeys(t); len(keys) != 0 {
					t.Errorf("bucket lists %q after ErrTooLarge, want nothing", keys)
				}
				if paths := e.regularFiles(t); len(paths) != 0 {
					t.Errorf("bucket directory holds %q after ErrTooLarge, want no files", paths)
				}
			})
		}
		t.Run("exactly max", func(t *testing.T) {
			e := newEnv(t)
			data := randomBytes(t, 1000)
			s, err := e.store.Put(t.Context(), ref1, bytes.NewReader(data), 1000)
			if err != nil {
				t.Fatalf("Put(1000 bytes, max 1000) = %v, want nil", err)
			}
			if s.Size != 1000 {
				t.Errorf("Size = %d, want 1000", s.Size)
			}
		})
	})
}

// failingReader yields n random bytes, then fails with err.
type failingReader struct {
	n   int
	err error
}

var errReader = errors.New("client went away")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	_, _ = rand.Read(p[:k])
	r.n -= k
	return k, nil
}

func TestFailedPutLeavesNothing(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		tests := []struct {
			name    string
			reader  func(cancel context.CancelFunc) io.Reader
			wantErr error
		}{
			{"reader error first read", func(context.CancelFunc) io.Reader { return &failingReader{err: errReader} }, errReader},
			{"reader error mid stream", func(context.CancelFunc) io.Reader { return &failingReader{n: 200 << 10, err: errReader} }, errReader},
			{"context cancelled mid stream", func(cancel context.CancelFunc) io.Reader {
				return io.MultiReader(&failingReader{n: 100 << 10, err: io.EOF}, cancelReader(cancel), &failingReader{n: 100 << 10, err: io.EOF})
			}, context.Canceled},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				_, err := e.store.Put(ctx, ref1, tt.reader(cancel), 1<<20)
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Put = %v, want %v", err, tt.wantErr)
				}
				if keys := e.listKeys(t); len(keys) != 0 {
					t.Errorf("bucket lists %q after failed Put, want nothing", keys)
				}
				if paths := e.regularFiles(t); len(paths) != 0 {
					t.Errorf("bucket directory holds %q after failed Put, want no files", paths)
				}
			})
		}
	})
}

// cancelReader calls cancel on its first Read and reports io.EOF.
type cancelReader context.CancelFunc

func (c cancelReader) Read([]byte) (int, error) {
	c()
	return 0, io.EOF
}

func TestFailedOverwriteKeepsOld(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		data := randomBytes(t, 5000)
		s := e.put(t, ref1, data)
		if _, err := e.store.Put(t.Context(), ref1, &failingReader{n: 100 << 10, err: errReader}, 1<<20); !errors.Is(err, errReader) {
			t.Fatalf("Put = %v, want %v", err, errReader)
		}
		if _, err := e.store.Put(t.Context(), ref1, bytes.NewReader(randomBytes(t, 6000)), 5999); !errors.Is(err, files.ErrTooLarge) {
			t.Fatalf("Put = %v, want ErrTooLarge", err)
		}
		got, err := e.store.ReadAll(t.Context(), ref1, s)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadAll after failed overwrites = %d bytes, %v, want the original %d bytes", len(got), err, len(data))
		}
	})
}

func TestOverwriteInvalidatesOldSealed(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		old := e.put(t, ref1, randomBytes(t, 100))
		e.put(t, ref1, randomBytes(t, 100))
		e.wantTampered(t, ref1, old)
	})
}

func TestDeleteAndNotFound(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		s := e.put(t, ref1, []byte("page"))
		if ok, err := e.store.Exists(t.Context(), ref1); err != nil || !ok {
			t.Errorf("Exists = %v, %v, want true, nil", ok, err)
		}
		if err := e.store.Delete(t.Context(), ref1); err != nil {
			t.Fatalf("Delete = %v, want nil", err)
		}
		if ok, err := e.store.Exists(t.Context(), ref1); err != nil || ok {
			t.Errorf("Exists after Delete = %v, %v, want false, nil", ok, err)
		}
		if _, err := e.store.ReadAll(t.Context(), ref1, s); !errors.Is(err, files.ErrNotFound) {
			t.Errorf("ReadAll after Delete = %v, want ErrNotFound", err)
		}
		if err := e.store.Delete(t.Context(), ref1); !errors.Is(err, files.ErrNotFound) {
			t.Errorf("second Delete = %v, want ErrNotFound", err)
		}
	})
}

func TestInvalidRef(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		tests := []struct {
			name string
			ref  files.Ref
		}{
			{"empty", files.Ref{}},
			{"unknown location", files.Ref{Tenant: "t", Location: "etc", ID: "x"}},
			{"empty tenant", files.Ref{Location: files.Files, ID: "x"}},
			{"empty id", files.Ref{Tenant: "t", Location: files.Files}},
			{"slash in id", files.Ref{Tenant: "t", Location: files.Files, ID: "a/b"}},
			{"slash in tenant", files.Ref{Tenant: "t/u", Location: files.Files, ID: "x"}},
			{"dot dot", files.Ref{Tenant: "t", Location: files.Files, ID: ".."}},
			{"dot dot inside", files.Ref{Tenant: "t", Location: files.Files, ID: "a..b"}},
			{"dot", files.Ref{Tenant: ".", Location: files.Files, ID: "x"}},
			{"leading dot", files.Ref{Tenant: "t", Location: files.Files, ID: ".hidden"}},
			{"backslash", files.Ref{Tenant: "t", Location: files.Files, ID: `a\b`}},
			{"space", files.Ref{Tenant: "t", Location: files.Files, ID: "a b"}},
			{"nul", files.Ref{Tenant: "t", Location: files.Files, ID: "a\x00"}},
			{"non ascii", files.Ref{Tenant: "t", Location: files.Files, ID: "é"}},
			{"too long", files.Ref{Tenant: "t", Location: files.Files, ID: strings.Repeat("a", 129)}},
		}
		e := newEnv(t)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if key, err := tt.ref.Key(); !errors.Is(err, files.ErrInvalid) {
					t.Errorf("Key() = %q, %v, want ErrInvalid", key, err)
				}
				if _, err := e.store.Put(t.Context(), tt.ref, strings.NewReader("x"), 10); !errors.Is(err, files.ErrInvalid) {
					t.Errorf("Put = %v, want ErrInvalid", err)
				}
				if _, err := e.store.ReadAll(t.Context(), tt.ref, files.Sealed{}); !errors.Is(err, files.ErrInvalid) {
					t.Errorf("ReadAll = %v, want ErrInvalid", err)
				}
				if _, err := e.store.Exists(t.Context(), tt.ref); !errors.Is(err, files.ErrInvalid) {
					t.Errorf("Exists = %v, want ErrInvalid", err)
				}
				if err := e.store.Delete(t.Context(), tt.ref); !errors.Is(err, files.ErrInvalid) {
					t.Errorf("Delete = %v, want ErrInvalid", err)
				}
			})
		}
		if _, err := e.store.Put(t.Context(), ref1, strings.NewReader("x"), -1); !errors.Is(err, files.ErrInvalid) {
			t.Errorf("Put(maxBytes -1) = %v, want ErrInvalid", err)
		}
		if paths := e.regularFiles(t); len(paths) != 0 {
			t.Errorf("bucket directory holds %q, want no files", paths)
		}
	})
}

func TestValidRef(t *testing.T) {
	tests := []struct {
		ref  files.Ref
		want string
	}{
		{files.Ref{Tenant: "acme", Location: files.Sessions, ID: "0190d6c4-7d1e-7b6a-9c35-2f3a4b5c6d7e"}, "sessions/acme/0190d6c4-7d1e-7b6a-9c35-2f3a4b5c6d7e"},
		{files.Ref{Tenant: "_platform", Location: files.Tmp, ID: "a.b_c-D"}, "tmp/_platform/a.b_c-D"},
		{files.Ref{Tenant: strings.Repeat("t", 128), Location: files.Workflows, ID: "x"}, "workflows/" + strings.Repeat("t", 128) + "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.want[:min(len(tt.want), 40)], func(t *testing.T) {
			got, err := tt.ref.Key()
			if err != nil || got != tt.want {
				t.Errorf("Key() = %q, %v, want %q, nil", got, err, tt.want)
			}
		})
	}
}

func TestLocationValid(t *testing.T) {
	for _, l := range []files.Location{files.Sessions, files.Persons, files.Workflows, files.Files, files.Tmp} {
		if !l.Valid() {
			t.Errorf("%q.Valid() = false, want true", l)
		}
	}
	for _, l := range []files.Location{"", "Sessions", "files/", "audit"} {
		if l.Valid() {
			t.Errorf("%q.Valid() = true, want false", l)
		}
	}
}

func TestSealedJSON(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		data := []byte("selfie")
		s := e.put(t, ref1, data)
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("Marshal = %v", err)
		}
		if !bytes.Contains(raw, []byte(`"plain_sha256":"`+s.PlainSHA256.String()+`"`)) {
			t.Errorf("Marshal = %s, want plain_sha256 as hex", raw)
		}
		var back files.Sealed
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("Unmarshal(%s) = %v", raw, err)
		}
		got, err := e.store.ReadAll(t.Context(), ref1, back)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadAll(unmarshalled Sealed) = %q, %v, want %q, nil", got, err, data)
		}
		for _, bad := range []string{`"abc"`, `"` + strings.Repeat("zz", 32) + `"`, `""`} {
			var d files.Digest
			if err := json.Unmarshal([]byte(bad), &d); err == nil {
				t.Errorf("Unmarshal(%s) into Digest = nil, want an error", bad)
			}
		}
	})
}

func TestLocalBucketModes(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		e.put(t, ref1, []byte("x"))
		for _, dir := range []string{e.dir, filepath.Dir(e.objectPath(ref1)), filepath.Dir(filepath.Dir(e.objectPath(ref1)))} {
			info, err := os.Stat(dir)
			if err != nil {
				t.Fatalf("Stat(%q) = %v", dir, err)
			}
			if got := info.Mode().Perm(); got != 0o700 {
				t.Errorf("mode of %s = %v, want 0700", dir, got)
			}
		}
	})
}

func TestReadAllCancelledIsNotTampered(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		s := e.put(t, ref1, randomBytes(t, 200<<10))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got, err := e.store.ReadAll(ctx, ref1, s)
		if err == nil || errors.Is(err, files.ErrTampered) || got != nil {
			t.Errorf("ReadAll(cancelled) = %d bytes, %v, want an I/O error that is not ErrTampered", len(got), err)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		const workers = 8
		errs := make(chan error, workers)
		for i := range workers {
			go func() {
				ref := files.Ref{Tenant: "tenant-a", Location: files.Files, ID: fmt.Sprintf("worker-%d", i)}
				data := bytes.Repeat([]byte{byte(i)}, 70000+i)
				s, err := e.store.Put(t.Context(), ref, bytes.NewReader(data), 1<<20)
				if err != nil {
					errs <- fmt.Errorf("Put(%v) = %w", ref, err)
					return
				}
				got, err := e.store.ReadAll(t.Context(), ref, s)
				if err == nil && !bytes.Equal(got, data) {
					err = errors.New("wrong content")
				}
				errs <- err
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

// TestDirectSharesBucket checks that a Store writing and reading the local
// directory's files directly keeps each object exactly where the bucket
// does: objects either one wrote read back through the other, and the
// bucket lists, finds and deletes them. A key fileblob escapes goes
// through the bucket.
func TestDirectSharesBucket(t *testing.T) {
	via := newEnv(t)
	b := newBarrier(t)
	direct := files.New(via.bucket, b, files.LocalDir(via.dir))
	via.store = files.New(via.bucket, b)
	escaped := files.Ref{Tenant: "tenant-a", Location: files.Sessions, ID: "x__0x41__"}
	for _, tt := range []struct {
		name        string
		ref         files.Ref
		write, read *files.Store
	}{
		{"direct to bucket", ref1, direct, via.store},
		{"bucket to direct", files.Ref{Tenant: "tenant-b", Location: files.Persons, ID: "file-2"}, via.store, direct},
		{"escaped key", escaped, direct, direct},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := randomBytes(t, 70<<10)
			sealed, err := tt.write.Put(t.Context(), tt.ref, bytes.NewReader(data), 1<<20)
			if err != nil {
				t.Fatalf("Put = %v, want nil", err)
			}
			got, err := tt.read.ReadAll(t.Context(), tt.ref, sealed)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadAll = %d bytes, %v, want the %d bytes put", len(got), err, len(data))
			}
			if tt.ref == escaped {
				if _, err := os.Stat(via.objectPath(escaped)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the escaped key's object is at its unescaped path (Stat = %v), want it where fileblob keeps it", err)
				}
			}
			key, _ := tt.ref.Key()
			if !slices.Contains(via.listKeys(t), key) {
				t.Errorf("bucket lists %q, want it to hold %s", via.listKeys(t), key)
			}
			for _, s := range []*files.Store{direct, via.store} {
				if ok, err := s.Exists(t.Context(), tt.ref); err != nil || !ok {
					t.Errorf("Exists = %v, %v, want true", ok, err)
				}
			}
			if err := tt.read.Delete(t.Context(), tt.ref); err != nil {
				t.Fatalf("Delete = %v, want nil", err)
			}
			if _, err := tt.write.ReadAll(t.Context(), tt.ref, sealed); !errors.Is(err, files.ErrNotFound) {
				t.Errorf("ReadAll after Delete = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestDirectFileMode checks that an object written directly is a file only
// its owner can read.
func TestDirectFileMode(t *testing.T) {
	e := newEnvIn(t, true)
	e.put(t, ref1, []byte("x"))
	info, err := os.Stat(e.objectPath(ref1))
	if err != nil {
		t.Fatalf("Stat = %v", err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("mode of the object = %v, want 0600", got)
	}
}

// TestDirectDirectoryIsNoObject: a directory where an object's file would
// be is not found, as through the bucket.
func TestDirectDirectoryIsNoObject(t *testing.T) {
	forModes(t, func(t *testing.T, newEnv func(testing.TB) env) {
		e := newEnv(t)
		s := e.put(t, ref1, []byte("x"))
		path := e.objectPath(ref1)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if got, err := e.store.ReadAll(t.Context(), ref1, s); !errors.Is(err, files.ErrNotFound) {
			t.Errorf("ReadAll(directory) = %d bytes, %v, want ErrNotFound", len(got), err)
		}
	})
}
