package faceapi

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/regula/httpx"
)

// knownError reports whether err is one of the documented answer errors.
func knownError(err error) bool {
	var rce *ResultCodeError
	return errors.As(err, &rce) || errors.Is(err, ErrNoFace) || errors.Is(err, httpx.ErrMalformed) || errors.Is(err, ErrNoVerdict)
}

// FuzzAnswers feeds arbitrary JSON to the three answer decoders: none may
// panic, fail with an undocumented error, or return a value outside its
// contract.
func FuzzAnswers(f *testing.F) {
	f.Add([]byte(`{"code":0,"detections":[{"imageIndex":0,"status":0,"faces":[{}]},{"imageIndex":1,"status":0,"faces":[{}]}],"results":[{"firstIndex":0,"secondIndex":1,"similarity":0.9}]}`))
	f.Add([]byte(`{"code":2,"detections":[{"imageIndex":1,"status":2,"faces":[]}],"results":[]}`))
	f.Add([]byte(`{"code":0,"results":{"detections":[{"roi":[1,2,3,4]},{}]}}`))
	f.Add([]byte(`{"code":0,"status":1,"type":1,"transactionId":"4f0c2f9e-6c1b-4a53-9b8e-2d6f5b1a7c3e"}`))
	id := uuid.MustParse("4f0c2f9e-6c1b-4a53-9b8e-2d6f5b1a7c3e")
	f.Fuzz(func(t *testing.T, data []byte) {
		var m matchResponse
		if json.Unmarshal(data, &m) == nil {
			s, err := m.similarity()
			if err != nil && !knownError(err) {
				t.Fatalf("similarity() = %v", err)
			}
			if err == nil && !(s >= 0 && s <= 1) {
				t.Fatalf("similarity() = %v, outside [0, 1]", s)
			}
		}
		var d detectResponse
		if json.Unmarshal(data, &d) == nil {
			n, err := d.faces()
			if err != nil && !knownError(err) {
				t.Fatalf("faces() = %v", err)
			}
			if err == nil && n < 1 {
				t.Fatalf("faces() = %d without an error", n)
			}
		}
		var info transactionInfo
		if json.Unmarshal(data, &info) == nil {
			r, err := info.result(id)
			if err != nil && !knownError(err) {
				t.Fatalf("result() = %v", err)
			}
			if err == nil && (r.Passed != (r.Status == 0) || (r.Status != 0 && r.Status != 1)) {
				t.Fatalf("result() = %+v", r)
			}
		}
	})
}
