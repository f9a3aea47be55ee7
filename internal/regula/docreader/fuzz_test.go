package docreader

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/idvault/idvault/internal/regula/httpx"
)

// FuzzReadResult feeds arbitrary JSON to the answer decoder: it must not
// panic, must fail only with ErrMalformed or ErrIncomplete, and a Result it
// returns must hold a CheckResult status.
func FuzzReadResult(f *testing.F) {
	f.Add([]byte(`{"ProcessingFinished":1,"ContainerList":{"List":[{"result_type":33,"Status":{"overallStatus":1}}]}}`))
	f.Add([]byte(`{"ProcessingFinished":1,"ContainerList":{"List":[{"result_type":33,"Status":{"overallStatus":0}},` +
		`{"result_type":36,"Text":{"fieldList":[{"fieldName":"Surname","lcid":1025,"value":"X"}]}},` +
		`{"result_type":37,"Images":{"fieldList":[{"fieldType":201,"valueList":[{"source":"RFID","value":"AAAA"}]}]}},` +
		`{"result_type":9,"OneCandidate":{"ID":1,"DocumentName":"D"}}]}}`))
	f.Add([]byte(`{"ProcessingFinished":2,"ContainerList":{"List":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p processResponse
		if json.Unmarshal(data, &p) != nil {
			return
		}
		r, err := p.result()
		if err != nil {
			if !errors.Is(err, httpx.ErrMalformed) && !errors.Is(err, ErrIncomplete) {
				t.Fatalf("result() = %v, want ErrMalformed or ErrIncomplete", err)
			}
			return
		}
		if r.OverallStatus < CheckError || r.OverallStatus > CheckNotDone || r.Fields == nil {
			t.Fatalf("result() = %v with status %d", r, r.OverallStatus)
		}
	})
}
