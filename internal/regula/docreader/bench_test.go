package docreader

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/idvault/idvault/internal/regula/httpx/httpxtest"
	"github.com/idvault/idvault/internal/regula/regulatest"
)

// ladder is the page sizes benchmarked: a thumbnail, a phone capture and a
// full-resolution photograph of a document page.
var ladder = [][2]int{{320, 240}, {1280, 960}, {2560, 1920}}

// BenchmarkProcess measures Process round trips over loopback against the
// stand-in, whose full decode of the image and JSON encoding of the answer
// (which carries the image back as the document front) are included.
func BenchmarkProcess(b *testing.B) {
	stand := regulatest.NewDocReader(b, regulatest.Options{})
	c := httpxtest.Plain(b, stand.URL(), New)
	ctx := context.Background()
	for _, size := range ladder {
		img := regulatest.JPEG(size[0], size[1])
		pages := [][]byte{img}
		b.Run(fmt.Sprintf("%dx%d-%dKiB", size[0], size[1], len(img)>>10), func(b *testing.B) {
			b.SetBytes(int64(len(img)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Process(ctx, pages, "FullProcess"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	img := regulatest.JPEG(ladder[0][0], ladder[0][1])
	b.Run("parallel-320x240", func(b *testing.B) {
		b.SetBytes(int64(len(img)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Process(ctx, [][]byte{img}, "FullProcess"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkReadResult measures the client's own decoding of a stand-in
// answer for one 1280x960 page, without the network or the stand-in.
func BenchmarkReadResult(b *testing.B) {
	stand := regulatest.NewDocReader(b, regulatest.Options{})
	img := regulatest.JPEG(ladder[1][0], ladder[1][1])
	body, err := json.Marshal(processRequest{
		ProcessParam: processParam{Scenario: "FullProcess"},
		List:         []requestImage{{ImageData: imageData{Image: img}, Light: lightWhite}},
	})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.Post(stand.URL()+"/api/process", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	answer, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("stand-in answered %d, %v", resp.StatusCode, err)
	}
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		var p processResponse
		if err := json.Unmarshal(answer, &p); err != nil {
			b.Fatal(err)
		}
		if _, err := p.result(); err != nil {
			b.Fatal(err)
		}
	}
}
