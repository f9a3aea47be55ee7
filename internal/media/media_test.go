package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/media"
)

var limits = media.Limits{MaxBytes: 20 << 20, MaxPixels: 50_000_000}

// testImage returns a w x h image with some structure for the encoders.
func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 13), uint8((x ^ y) * 3), 255})
		}
	}
	return img
}

func encodePNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, testImage(w, h)); err != nil {
		t.Fatalf("png.Encode = %v", err)
	}
	return buf.Bytes()
}

func encodeJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testImage(w, h), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatalf("jpeg.Encode = %v", err)
	}
	return buf.Bytes()
}

func encodeGIF(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, testImage(4, 4), nil); err != nil {
		t.Fatalf("gif.Encode = %v", err)
	}
	return buf.Bytes()
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("ReadFile = %v", err)
	}
	return data
}

// pngChunk returns a PNG chunk with a valid CRC.
func pngChunk(typ string, data []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(c, typ...)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

// pngHeaderOnly returns a PNG that claims w x h RGBA pixels and holds none.
func pngHeaderOnly(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA, deflate, no filter, no interlace
	p := []byte("\x89PNG\r\n\x1a\n")
	p = append(p, pngChunk("IHDR", ihdr)...)
	p = append(p, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(p, pngChunk("IEND", nil)...)
}

// withJPEGSize returns a copy of a baseline JPEG whose SOF0 header claims
// w x h pixels.
func withJPEGSize(t testing.TB, data []byte, w, h uint16) []byte {
	t.Helper()
	out := bytes.Clone(data)
	i := bytes.Index(out, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatalf("no SOF0 marker in JPEG")
	}
	// FF C0, length (2), precision (1), height (2), width (2).
	binary.BigEndian.PutUint16(out[i+5:], h)
	binary.BigEndian.PutUint16(out[i+7:], w)
	return out
}

// webpHugeLossless returns the 1x1 lossless WebP with its VP8L header
// claiming 16384 x 16384 pixels (the format's maximum).
func webpHugeLossless(t testing.TB) []byte {
	t.Helper()
	out := bytes.Clone(readTestdata(t, "1x1-lossless.webp"))
	// VP8L: signature 0x2f at 20, then 14 bits width-1 and 14 bits height-1.
	if out[20] != 0x2f {
		t.Fatalf("testdata lossless WebP has no VP8L signature at 20")
	}
	out[21], out[22], out[23] = 0xff, 0xff, 0xff
	out[24] |= 0x0f
	return out
}

// bitWriter writes JPEG entropy-coded bits, stuffing a zero after 0xFF.
type bitWriter struct {
	out   []byte
	acc   byte
	nbits uint
}

func (w *bitWriter) put(v uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | byte(v>>uint(i))&1
		if w.nbits++; w.nbits == 8 {
			w.out = append(w.out, w.acc)
			if w.acc == 0xff {
				w.out = append(w.out, 0)
			}
			w.acc, w.nbits = 0, 0
		}
	}
}

// bytes pads the last byte with 1 bits and returns the coded bytes.
func (w *bitWriter) bytes() []byte {
	for w.nbits != 0 {
		w.put(1, 1)
	}
	return w.out
}

// progressiveScanBomb returns a valid progressive grayscale JPEG of size x
// size pixels (size >= 1024) holding a DC scan and then acScans identical AC scans that hold
// only end-of-band runs: each costs a few bytes and a pass over every block.
func progressiveScanBomb(size, acScans int) []byte {
	blocks := ((size + 7) / 8) * ((size + 7) / 8)
	f := []byte{0xff, 0xd8, 0xff, 0xdb, 0, 67, 0} // SOI, DQT table 0
	f = append(f, bytes.Repeat([]byte{1}, 64)...)
	f = append(f, 0xff, 0xc2, 0, 11, 8, byte(size>>8), byte(size), byte(size>>8), byte(size), 1, 1, 0x11, 0) // SOF2
	// DHT: DC table 0 with one 1-bit code for category 0; AC table 0 with
	// one 1-bit code for EOB14 (0xe0).
	f = append(f, 0xff, 0xc4, 0, 20, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00)
	f = append(f, 0xff, 0xc4, 0, 20, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe0)
	var dc bitWriter
	for range blocks {
		dc.put(0, 1)
	}
	f = append(f, 0xff, 0xda, 0, 8, 1, 1, 0x00, 0, 0, 0) // SOS: DC first scan
	f = append(f, dc.bytes()...)
	// EOB14 codes runs of 16384 to 32767 blocks.
	var ac bitWriter
	for left := blocks; left > 0; {
		run := left
		if left >= 2<<14 {
			run = 1 << 14
		}
		ac.put(0, 1)
		ac.put(uint32(run-1<<14), 14)
		left -= run
	}
	scan := append([]byte{0xff, 0xda, 0, 8, 1, 1, 0x00, 1, 63, 0}, ac.bytes()...) // SOS: AC 1..63
	for range acScans {
		f = append(f, scan...)
	}
	return append(f, 0xff, 0xd9)
}

// withScanMarkers returns a copy of a JPEG with a comment segment, right
// after SOI, holding n start-of-scan markers.
func withScanMarkers(data []byte, n int) []byte {
	com := bytes.Repeat([]byte{0xff, 0xda}, n)
	out := append([]byte{0xff, 0xd8, 0xff, 0xfe}, binary.BigEndian.AppendUint16(nil, uint16(len(com)+2))...)
	out = append(out, com...)
	return append(out, data[2:]...)
}

func minimalPDF(version string) []byte {
	return []byte("%PDF-" + version + "\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
}

func TestCheckAccepts(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		declared string
		limits   media.Limits // the package limits when zero
		want     media.Info
	}{
		{"png", encodePNG(t, 3, 2), "image/png", media.Limits{}, media.Info{ContentType: media.PNG, Width: 3, Height: 2}},
		{"png declared with parameter", encodePNG(t, 3, 2), "image/png; charset=binary", media.Limits{}, media.Info{ContentType: media.PNG, Width: 3, Height: 2}},
		{"png declared upper case", encodePNG(t, 3, 2), "IMAGE/PNG", media.Limits{}, media.Info{ContentType: media.PNG, Width: 3, Height: 2}},
		{"jpeg", encodeJPEG(t, 17, 9), "image/jpeg", media.Limits{}, media.Info{ContentType: media.JPEG, Width: 17, Height: 9}},
		{"webp 1x1 lossless", readTestdata(t, "1x1-lossless.webp"), "image/webp", media.Limits{}, media.Info{ContentType: media.WebP, Width: 1, Height: 1}},
		{"webp 1x1 lossy", readTestdata(t, "1x1-lossy.webp"), "image/webp", media.Limits{}, media.Info{ContentType: media.WebP, Width: 1, Height: 1}},
		{"webp 1x1 alpha", readTestdata(t, "1x1-alpha.webp"), "image/webp", media.Limits{}, media.Info{ContentType: media.WebP, Width: 1, Height: 1}},
		{"webp lossy", readTestdata(t, "blue-purple-pink.lossy.webp"), "image/webp", media.Limits{}, media.Info{ContentType: media.WebP, Width: 150, Height: 100}},
		{"webp lossless", readTestdata(t, "gopher-doc.8bpp.lossless.webp"), "image/webp", media.Limits{}, media.Info{ContentType: media.WebP, Width: 75, Height: 100}},
		{"pdf 1.7", minimalPDF("1.7"), "application/pdf", media.Limits{}, media.Info{ContentType: media.PDF}},
		{"pdf 2.0", minimalPDF("2.0"), "application/pdf", media.Limits{}, media.Info{ContentType: media.PDF}},
		{"pdf eof 1 KiB from end", append(minimalPDF("1.4"), bytes.Repeat([]byte{' '}, 1024-6)...), "application/pdf", media.Limits{}, media.Info{ContentType: media.PDF}},
		{"exactly max pixels", encodePNG(t, 10, 5), "image/png", media.Limits{MaxBytes: 1 << 20, MaxPixels: 50}, media.Info{ContentType: media.PNG, Width: 10, Height: 5}},
		{"progressive jpeg at scan limit", progressiveScanBomb(1024, media.MaxJPEGScans-1), "image/jpeg", media.Limits{}, media.Info{ContentType: media.JPEG, Width: 1024, Height: 1024}},
		{"jpeg with scan limit reached", withScanMarkers(encodeJPEG(t, 8, 8), media.MaxJPEGScans-1), "image/jpeg", media.Limits{}, media.Info{ContentType: media.JPEG, Width: 8, Height: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.limits
			if l == (media.Limits{}) {
				l = limits
			}
			got, err := media.Check(tt.data, tt.declared, l)
			if err != nil || got != tt.want {
				t.Errorf("Check(%s, %q) = %+v, %v, want %+v, nil", tt.name, tt.declared, got, err, tt.want)
			}
		})
	}
}

func TestCheckRejects(t *testing.T) {
	pngData := encodePNG(t, 40, 30)
	jpegData := encodeJPEG(t, 64, 48)
	lossy := readTestdata(t, "blue-purple-pink.lossy.webp")
	lossless := readTestdata(t, "gopher-doc.8bpp.lossless.webp")
	tests := []struct {
		name     string
		data     []byte
		declared string
		want     error
	}{
		{"empty", nil, "image/jpeg", media.ErrUnsupportedType},
		{"gif", encodeGIF(t), "image/gif", media.ErrUnsupportedType},
		{"gif declared jpeg", encodeGIF(t), "image/jpeg", media.ErrUnsupportedType},
		{"bmp", append([]byte("BM"), make([]byte, 60)...), "image/bmp", media.ErrUnsupportedType},
		{"text", []byte("hello, world"), "text/plain", media.ErrUnsupportedType},
		{"html declared jpeg", []byte("<html><script>alert(1)</script></html>"), "image/jpeg", media.ErrUnsupportedType},
		{"svg declared png", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), "image/png", media.ErrUnsupportedType},
		{"zip", []byte("PK\x03\x04\x14\x00\x00\x00"), "application/pdf", media.ErrUnsupportedType},
		{"riff wave", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), "image/webp", media.ErrUnsupportedType},
		{"html after jpeg magic bytes declared html", append([]byte("\xff\xd8\xff"), "<html>"...), "text/html", media.ErrTypeMismatch},

		{"png declared jpeg", pngData, "image/jpeg", media.ErrTypeMismatch},
		{"jpeg declared png", jpegData, "image/png", media.ErrTypeMismatch},
		{"jpeg declared image/jpg", jpegData, "image/jpg", media.ErrTypeMismatch},
		{"jpeg declared empty", jpegData, "", media.ErrTypeMismatch},
		{"jpeg declared malformed", jpegData, "image/jpeg; ;", media.ErrTypeMismatch},
		{"pdf declared octet-stream", minimalPDF("1.7"), "application/octet-stream", media.ErrTypeMismatch},
		{"webp declared png", lossy, "image/png", media.ErrTypeMismatch},

		{"png huge header", pngHeaderOnly(100000, 100000), "image/png", media.ErrTooManyPixels},
		{"png wide", pngHeaderOnly(1<<31-1, 1), "image/png", media.ErrTooManyPixels},
		{"jpeg huge header", withJPEGSize(t, jpegData, 60000, 60000), "image/jpeg", media.ErrTooManyPixels},
		{"webp huge header", webpHugeLossless(t), "image/webp", media.ErrTooManyPixels},

		{"jpeg too many scans", withScanMarkers(jpegData, media.MaxJPEGScans), "image/jpeg", media.ErrCorrupt},
		{"png zero width", pngHeaderOnly(0, 10), "image/png", media.ErrCorrupt},
		{"jpeg zero height", withJPEGSize(t, jpegData, 64, 0), "image/jpeg", media.ErrCorrupt},
		{"jpeg header larger than data", withJPEGSize(t, jpegData, 640, 480), "image/jpeg", media.ErrCorrupt},
		{"png header only", pngHeaderOnly(100, 100), "image/png", media.ErrCorrupt},
		{"png bad crc", flip(pngData, 29), "image/png", media.ErrCorrupt},
		{"jpeg magic only", []byte("\xff\xd8\xff"), "image/jpeg", media.ErrCorrupt},
		{"png magic only", []byte("\x89PNG\r\n\x1a\n"), "image/png", media.ErrCorrupt},
		{"webp magic only", []byte("RIFF\x00\x00\x00\x00WEBP"), "image/webp", media.ErrCorrupt},

		{"pdf without eof", []byte("%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"), "application/pdf", media.ErrCorrupt},
		{"pdf eof too far from end", append(minimalPDF("1.7"), bytes.Repeat([]byte{' '}, 1025)...), "application/pdf", media.ErrCorrupt},
		{"pdf unknown version", minimalPDF("3.0"), "application/pdf", media.ErrCorrupt},
		{"pdf no version", []byte("%PDF-\n%%EOF"), "application/pdf", media.ErrCorrupt},
		{"pdf truncated", minimalPDF("1.7")[:40], "application/pdf", media.ErrCorrupt},
	}
	for _, cut := range []int{10, 33, len(pngData) / 2, len(pngData) - 12, len(pngData) - 1} {
		tests = append(tests, struct {
			name     string
			data     []byte
			declared string
			want     error
		}{fmt.Sprintf("png truncated to %d of %d", cut, len(pngData)), pngData[:cut], "image/png", media.ErrCorrupt})
	}
	for _, cut := range []int{3, 100, len(jpegData) / 2, len(jpegData) - 10, len(jpegData) - 2} {
		tests = append(tests, struct {
			name     string
			data     []byte
			declared string
			want     error
		}{fmt.Sprintf("jpeg truncated to %d of %d", cut, len(jpegData)), jpegData[:cut], "image/jpeg", media.ErrCorrupt})
	}
	for _, webp := range [][]byte{lossy, lossless} {
		for _, cut := range []int{12, 30, len(webp) / 2, len(webp) - 1} {
			tests = append(tests, struct {
				name     string
				data     []byte
				declared string
				want     error
			}{fmt.Sprintf("webp truncated to %d of %d", cut, len(webp)), webp[:cut], "image/webp", media.ErrCorrupt})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := media.Check(tt.data, tt.declared, limits)
			if !errors.Is(err, tt.want) {
				t.Errorf("Check(%s, %q) = %+v, %v, want %v", tt.name, tt.declared, got, err, tt.want)
			}
			if got != (media.Info{}) {
				t.Errorf("Check(%s) = %+v with an error, want zero Info", tt.name, got)
			}
		})
	}
}

func flip(data []byte, i int) []byte {
	out := bytes.Clone(data)
	out[i] ^= 0x01
	return out
}

func TestCheckLimits(t *testing.T) {
	pngData := encodePNG(t, 10, 10)
	tests := []struct {
		name   string
		limits media.Limits
		want   error
	}{
		{"one byte over", media.Limits{MaxBytes: int64(len(pngData) - 1), MaxPixels: 100}, media.ErrTooLarge},
		{"one pixel over", media.Limits{MaxBytes: 1 << 20, MaxPixels: 99}, media.ErrTooManyPixels},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := media.Check(pngData, "image/png", tt.limits); !errors.Is(err, tt.want) {
				t.Errorf("Check(10x10 png, %+v) = %v, want %v", tt.limits, err, tt.want)
			}
		})
	}
	for _, l := range []media.Limits{{}, {MaxBytes: 1 << 20}, {MaxPixels: 100}, {MaxBytes: -1, MaxPixels: 100}} {
		if _, err := media.Check(pngData, "image/png", l); err == nil {
			t.Errorf("Check(png, %+v) = nil, want an error for limits that are not positive", l)
		}
	}
}

// TestBombRejectedCheaply checks that bombs are rejected before a full
// decode: rejecting a header that claims billions of pixels, or a JPEG of a
// thousand scans, allocates kilobytes, not the gigabytes (or the CPU
// minutes) a full decode would take.
func TestBombRejectedCheaply(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		declared string
		want     error
	}{
		{"png 10 gigapixels", pngHeaderOnly(100000, 100000), "image/png", media.ErrTooManyPixels},
		{"jpeg 4 gigapixels", withJPEGSize(t, encodeJPEG(t, 8, 8), 65535, 65535), "image/jpeg", media.ErrTooManyPixels},
		{"webp 268 megapixels", webpHugeLossless(t), "image/webp", media.ErrTooManyPixels},
		// Decoding this 62 KB file takes about 24 s of CPU.
		{"jpeg 1000 scans", progressiveScanBomb(4000, 1000), "image/jpeg", media.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const runs = 10
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				if _, err := media.Check(tt.data, tt.declared, limits); !errors.Is(err, tt.want) {
					t.Fatalf("Check(%s) = %v, want %v", tt.name, err, tt.want)
				}
			}
			runtime.ReadMemStats(&after)
			if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1<<20 {
				t.Errorf("Check(%s) allocated %d bytes a run, want under 1 MiB", tt.name, perRun)
			}
		})
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		name   string
		head   []byte
		want   string
		wantOK bool
	}{
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), media.JPEG, true},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), media.PNG, true},
		{"webp", []byte("RIFF\x1a\x00\x00\x00WEBPVP8L"), media.WebP, true},
		{"pdf", []byte("%PDF-1.7\n"), media.PDF, true},
		{"empty", nil, "", false},
		{"jpeg prefix too short", []byte("\xff\xd8"), "", false},
		{"png without crlf", []byte("\x89PNG\n\x1a\n"), "", false},
		{"riff short", []byte("RIFF\x1a\x00\x00\x00WEB"), "", false},
		{"riff avi", []byte("RIFF\x1a\x00\x00\x00AVI LIST"), "", false},
		{"gif", []byte("GIF89a"), "", false},
		{"bmp", []byte("BM\x00\x00"), "", false},
		{"tiff", []byte("II*\x00"), "", false},
		{"pdf lower case", []byte("%pdf-1.7"), "", false},
		{"pdf after whitespace", []byte(" %PDF-1.7"), "", false},
		{"html", []byte("<!DOCTYPE html>"), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := media.Sniff(tt.head)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Sniff(%q) = %q, %v, want %q, %v", tt.head, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(encodePNG(f, 3, 2), "image/png")
	f.Add(encodeJPEG(f, 9, 9), "image/jpeg")
	f.Add(readTestdata(f, "1x1-lossless.webp"), "image/webp")
	f.Add(readTestdata(f, "1x1-lossy.webp"), "image/webp")
	f.Add(readTestdata(f, "1x1-alpha.webp"), "image/webp")
	f.Add(pngHeaderOnly(100000, 100000), "image/png")
	f.Add(minimalPDF("1.7"), "application/pdf")
	f.Add([]byte("<html>"), "image/jpeg")
	f.Add(progressiveScanBomb(1024, 2), "image/jpeg")
	sentinels := []error{media.ErrUnsupportedType, media.ErrTypeMismatch, media.ErrTooManyPixels, media.ErrTooLarge, media.ErrCorrupt}
	fuzzLimits := media.Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte, declared string) {
		info, err := media.Check(data, declared, fuzzLimits)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("Check = %v, want one of the sentinel errors", err)
		}
		sniffed, ok := media.Sniff(data)
		if !ok || info.ContentType != sniffed || !strings.HasPrefix(strings.ToLower(declared), sniffed) {
			t.Fatalf("Check accepted %q declared %q as %+v; Sniff = %q, %v", data[:min(len(data), 16)], declared, info, sniffed, ok)
		}
		if pixels := int64(info.Width) * int64(info.Height); pixels > fuzzLimits.MaxPixels {
			t.Fatalf("Check accepted %dx%d, over the pixel limit", info.Width, info.Height)
		}
	})
}

func BenchmarkCheckJPEG1MP(b *testing.B) {
	data := encodeJPEG(b, 1000, 1000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := media.Check(data, "image/jpeg", limits); err != nil {
			b.Fatalf("Check = %v", err)
		}
	}
}

func BenchmarkCheckPNGBomb(b *testing.B) {
	data := pngHeaderOnly(100000, 100000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := media.Check(data, "image/png", limits); !errors.Is(err, media.ErrTooManyPixels) {
			b.Fatalf("Check = %v", err)
		}
	}
}
