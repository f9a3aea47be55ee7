package faceapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/idvault/idvault/internal/regula/httpx/httpxtest"
	"github.com/idvault/idvault/internal/regula/regulatest"
)

// BenchmarkMatch measures Match round trips over loopback against the
// stand-in (which decodes both images in full): a document portrait against
// selfies of growing size.
func BenchmarkMatch(b *testing.B) {
	stand := regulatest.NewFaceAPI(b, regulatest.Options{})
	c := httpxtest.Plain(b, stand.URL(), New)
	ctx := context.Background()
	doc := regulatest.JPEG(240, 320)
	for _, size := range [][2]int{{320, 240}, {1280, 960}, {2560, 1920}} {
		live := regulatest.JPEG(size[0], size[1])
		b.Run(fmt.Sprintf("selfie-%dx%d-%dKiB", size[0], size[1], len(live)>>10), func(b *testing.B) {
			b.SetBytes(int64(len(doc) + len(live)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Match(ctx, doc, live); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	live := regulatest.JPEG(320, 240)
	b.Run("parallel-selfie-320x240", func(b *testing.B) {
		b.SetBytes(int64(len(doc) + len(live)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Match(ctx, doc, live); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
