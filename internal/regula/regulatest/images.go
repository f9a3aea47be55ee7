package regulatest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"sync"

	"github.com/idvault/idvault/internal/media"
)

// imageLimits bound what the stand-ins decode.
var imageLimits = media.Limits{MaxBytes: 64 << 20, MaxPixels: 64 << 20}

// pattern draws a deterministic gradient with pseudo-random grain, so that
// encoded sizes resemble photographs rather than flat colour.
func pattern(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	seed := uint32(2463534242)
	for y := range h {
		for x := range w {
			seed ^= seed << 13
			seed ^= seed >> 17
			seed ^= seed << 5
			grain := uint8(seed % 48)
			img.SetRGBA(x, y, color.RGBA{
				R: uint8(x*255/max(w, 1)) ^ grain,
				G: uint8(y*255/max(h, 1)) ^ grain,
				B: uint8((x+y)*255/max(w+h, 1)) ^ grain,
				A: 255,
			})
		}
	}
	return img
}

// JPEG returns a w×h JPEG (quality 85) of a synthetic pattern: a real image
// that the stand-ins accept, with no person in it.
func JPEG(w, h int) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, pattern(w, h), &jpeg.Options{Quality: 85}); err != nil {
		panic(fmt.Sprintf("regulatest: encode JPEG: %v", err))
	}
	return buf.Bytes()
}

// PNG returns a w×h PNG of the same synthetic pattern.
func PNG(w, h int) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, pattern(w, h)); err != nil {
		panic(fmt.Sprintf("regulatest: encode PNG: %v", err))
	}
	return buf.Bytes()
}

var specimenPortrait = sync.OnceValue(func() []byte { return JPEG(96, 128) })

// SpecimenPortrait returns the JPEG the Document Reader stand-in returns as
// the portrait (graphic field 201).
func SpecimenPortrait() []byte { return bytes.Clone(specimenPortrait()) }

// checkImage reports whether data is a JPEG or PNG that decodes in full.
func checkImage(data []byte) error {
	ct, ok := media.Sniff(data)
	if !ok || (ct != media.JPEG && ct != media.PNG) {
		return fmt.Errorf("not a JPEG or PNG image")
	}
	if _, err := media.Check(data, ct, imageLimits); err != nil {
		return fmt.Errorf("image does not decode: %w", err)
	}
	return nil
}
