// Package media checks that an uploaded file is the image or PDF it claims to
// be before it is stored or shown to anyone.
//
// Threat model: the uploader is hostile. A file may carry a misleading
// Content-Type or file name (HTML or SVG posing as a JPEG, to be rendered in
// an operator's browser), be truncated or corrupt, or be a decompression bomb
// (a few kilobytes declaring billions of pixels). Check accepts only JPEG,
// PNG, WebP and PDF, identified by their magic bytes, and only when the
// declared type names the same format.
//
// Images are checked in two steps. First only the header is parsed
// (DecodeConfig of the format's own decoder: image/jpeg, image/png,
// golang.org/x/image/webp), and an image whose width times height exceeds
// Limits.MaxPixels is rejected: that costs microseconds and a few kilobytes
// however many pixels the header claims. Only an image within the limit is
// then decoded in full, which rejects truncated and corrupt pixel data. A full
// decode needs up to about 16 bytes a pixel (a progressive 4:4:4 JPEG keeps
// every DCT coefficient), so choose MaxPixels with that in mind. Two checks
// bound what the header cannot: a JPEG may hold at most MaxJPEGScans scans
// (each progressive scan costs a pass over every block, and a scan can be a
// few bytes long), and a WebP file must hold at least the length its RIFF
// header declares. The decoders are called directly rather than through
// image.Decode, so formats registered elsewhere in the program (GIF, BMP,
// ...) are never accepted.
//
// PDFs are not parsed, only recognised: a PDF must start with "%PDF-1." or
// "%PDF-2." and have "%%EOF" within its last 1 KiB, which rejects most
// truncated uploads. Whatever renders a PDF must still treat it as hostile.
package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"mime"

	"golang.org/x/image/webp"
)

// Sentinel errors returned by Check. Check them with errors.Is.
var (
	// ErrUnsupportedType means the content is none of the accepted formats.
	ErrUnsupportedType = errors.New("media: unsupported file type")
	// ErrTypeMismatch means the declared Content-Type does not name the
	// format the content has.
	ErrTypeMismatch = errors.New("media: declared type does not match content")
	// ErrTooManyPixels means an image declares more than Limits.MaxPixels.
	ErrTooManyPixels = errors.New("media: image has too many pixels")
	// ErrTooLarge means the file has more than Limits.MaxBytes bytes.
	ErrTooLarge = errors.New("media: file too large")
	// ErrCorrupt means the content starts like an accepted format but is
	// truncated or malformed.
	ErrCorrupt = errors.New("media: corrupt file")
)

// Accepted content types.
const (
	JPEG = "image/jpeg"
	PNG  = "image/png"
	WebP = "image/webp"
	PDF  = "application/pdf"
)

// MaxJPEGScans bounds the start-of-scan markers (FF DA) in a JPEG. Go's
// decoder walks every block of the image once per progressive scan, and a
// scan of nothing but end-of-band runs takes about 30 bytes: a 62 KB,
// 16-megapixel JPEG of 1000 such scans takes 24 s of CPU to decode. Camera
// JPEGs have one scan and progressive encoders about ten. The count covers
// the whole file, metadata included, so it is an upper bound on the real
// scans; random metadata holds one FF DA pair per 64 KiB on average.
const MaxJPEGScans = 64

var sosMarker = []byte{0xff, 0xda}

// pdfTail is how far from the end of a PDF its "%%EOF" marker may be.
const pdfTail = 1024

// Limits bounds what Check accepts. Both fields MUST be positive.
type Limits struct {
	// MaxBytes is the largest accepted file size in bytes.
	MaxBytes int64
	// MaxPixels is the largest accepted width times height of an image.
	MaxPixels int64
}

// Info describes a file that passed Check. Width and Height are zero for PDFs.
type Info struct {
	ContentType string
	Width       int
	Height      int
}

// Sniff returns the accepted content type whose magic bytes head starts
// with. head needs at most the file's first 12 bytes. It reports false for
// anything else, including every format that is not accepted.
func Sniff(head []byte) (contentType string, ok bool) {
	switch {
	case bytes.HasPrefix(head, []byte("\xff\xd8\xff")):
		return JPEG, true
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, true
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return WebP, true
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return PDF, true
	}
	return "", false
}

// Check verifies that data is an accepted file of the declared Content-Type
// (parameters such as "; charset=" are ignored) within limits, and describes
// it. It reads only data and is safe for concurrent use.
func Check(data []byte, declared string, limits Limits) (Info, error) {
	if limits.MaxBytes <= 0 || limits.MaxPixels <= 0 {
		return Info{}, errors.New("media: limits must be positive")
	}
	if int64(len(data)) > limits.MaxBytes {
		return Info{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), limits.MaxBytes)
	}
	ct, ok := Sniff(data)
	if !ok {
		return Info{}, ErrUnsupportedType
	}
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil || mt != ct {
		return Info{}, fmt.Errorf("%w: declared %q, content is %s", ErrTypeMismatch, declared, ct)
	}
	if ct == PDF {
		return checkPDF(data)
	}
	return checkImage(data, ct, limits.MaxPixels)
}

func checkPDF(data []byte) (Info, error) {
	if !bytes.HasPrefix(data, []byte("%PDF-1.")) && !bytes.HasPrefix(data, []byte("%PDF-2.")) {
		return Info{}, fmt.Errorf("%w: unknown PDF version", ErrCorrupt)
	}
	if !bytes.Contains(data[max(0, len(data)-pdfTail):], []byte("%%EOF")) {
		return Info{}, fmt.Errorf("%w: no %%%%EOF near the end of the PDF", ErrCorrupt)
	}
	return Info{ContentType: PDF}, nil
}

type codec struct {
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

var codecs = map[string]codec{
	JPEG: {jpeg.DecodeConfig, jpeg.Decode},
	PNG:  {png.DecodeConfig, png.Decode},
	WebP: {webp.DecodeConfig, webp.Decode},
}

func checkImage(data []byte, ct string, maxPixels int64) (Info, error) {
	// The WebP decoder stops reading once it has its pixels, so a file cut
	// inside the final padding bits decodes; the RIFF size catches it.
	if ct == WebP && uint64(binary.LittleEndian.Uint32(data[4:8]))+8 > uint64(len(data)) {
		return Info{}, fmt.Errorf("%w: RIFF size exceeds the file", ErrCorrupt)
	}
	// Every progressive JPEG scan makes the decoder walk all blocks of the
	// image again, and a scan that only carries end-of-band runs costs a
	// few bytes: bound the scans, or a small file burns minutes of CPU.
	if ct == JPEG && bytes.Count(data, sosMarker) > MaxJPEGScans {
		return Info{}, fmt.Errorf("%w: more than %d JPEG scans", ErrCorrupt, MaxJPEGScans)
	}
	c := codecs[ct]
	cfg, err := c.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	w, h := int64(cfg.Width), int64(cfg.Height)
	if w <= 0 || h <= 0 {
		return Info{}, fmt.Errorf("%w: %dx%d image", ErrCorrupt, w, h)
	}
	if w > maxPixels/h {
		return Info{}, fmt.Errorf("%w: %dx%d image, limit %d pixels", ErrTooManyPixels, w, h, maxPixels)
	}
	img, err := c.decode(bytes.NewReader(data))
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return Info{}, fmt.Errorf("%w: header says %dx%d, pixels are %dx%d", ErrCorrupt, w, h, b.Dx(), b.Dy())
	}
	return Info{ContentType: ct, Width: cfg.Width, Height: cfg.Height}, nil
}
