package docreader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/regula/httpx/httpxtest"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/testenv/testlog"
	"github.com/idvault/idvault/internal/testenv/testtls"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type env = httpxtest.Env[*regulatest.DocReader, *Client]

// newEnv starts a stand-in and a client for it; edit changes the config.
func newEnv(t *testing.T, opts regulatest.Options, edit func(*httpx.Config)) env {
	t.Helper()
	return httpxtest.Wire(t, regulatest.NewDocReader(t, opts), New, edit)
}

var (
	page1 = regulatest.JPEG(160, 110)
	page2 = regulatest.PNG(64, 44)
)

func TestProcess(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	r, err := e.Client.Process(context.Background(), [][]byte{page1, page2}, "FullProcess")
	if err != nil {
		t.Fatalf("Process: %v (stand-in rejections: %q)", err, e.Stand.Rejections())
	}
	if r.OverallStatus != CheckOK || !r.Passed() {
		t.Errorf("OverallStatus = %d, Passed %t; want %d, true", r.OverallStatus, r.Passed(), CheckOK)
	}
	if r.DocumentType != regulatest.SpecimenDocumentName || r.DocumentID != regulatest.SpecimenDocumentID {
		t.Errorf("document = %q %d, want %q %d", r.DocumentType, r.DocumentID, regulatest.SpecimenDocumentName, regulatest.SpecimenDocumentID)
	}
	want := regulatest.SpecimenFields()
	want["Surname (Arabic (Saudi Arabia))"] = "إريكسون"
	if len(r.Fields) != len(want) {
		t.Errorf("Fields has %d entries, want %d", len(r.Fields), len(want))
	}
	for k, v := range want {
		if r.Fields[k] != v {
			t.Errorf("Fields[%q] = %q, want %q", k, r.Fields[k], v)
		}
	}
	if !bytes.Equal(r.Portrait, regulatest.SpecimenPortrait()) {
		t.Errorf("Portrait is %d bytes, want the specimen portrait (%d bytes)", len(r.Portrait), len(regulatest.SpecimenPortrait()))
	}
	if _, err := uuid.Parse(r.TransactionID); err != nil {
		t.Errorf("TransactionID = %q, want a uuid", r.TransactionID)
	}
	if n := e.Stand.Requests(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestProcessDocumentOutcomes(t *testing.T) {
	t.Run("bad overall status", func(t *testing.T) {
		e := newEnv(t, regulatest.Options{}, nil)
		e.Stand.Inject(regulatest.BadDocument())
		r, err := e.Client.Process(context.Background(), [][]byte{page1}, "FullProcess")
		if err != nil {
			t.Fatalf("Process: %v; a failed document is a result, not an error", err)
		}
		if r.OverallStatus != CheckError || r.Passed() {
			t.Errorf("OverallStatus = %d, Passed %t; want %d, false", r.OverallStatus, r.Passed(), CheckError)
		}
		if got := r.Fields["Date of expiry"]; got != "2012-04-15" {
			t.Errorf("Date of expiry = %q, want the expired date", got)
		}
	})
	t.Run("no portrait", func(t *testing.T) {
		e := newEnv(t, regulatest.Options{}, nil)
		e.Stand.Inject(regulatest.NoFace())
		r, err := e.Client.Process(context.Background(), [][]byte{page1}, "FullProcess")
		if err != nil {
			t.Fatalf("Process: %v", err)
		}
		if r.Portrait != nil {
			t.Errorf("Portrait = %d bytes, want nil", len(r.Portrait))
		}
	})
}

func TestProcessFaults(t *testing.T) {
	tests := []struct {
		name         string
		faults       []regulatest.Fault
		wantErr      error
		wantStatus   int
		wantRequests int
		wantWaits    []time.Duration
	}{
		{name: "500", faults: []regulatest.Fault{regulatest.Status(500)}, wantStatus: 500, wantRequests: 1},
		{name: "400 never retried", faults: []regulatest.Fault{regulatest.Status(400)}, wantStatus: 400, wantRequests: 1},
		{name: "503 503 then ok", faults: []regulatest.Fault{regulatest.Status(503), regulatest.Status(503)}, wantRequests: 3},
		{name: "502 504 then ok", faults: []regulatest.Fault{regulatest.Status(502), regulatest.Status(504)}, wantRequests: 3},
		{name: "503 until retries run out", faults: []regulatest.Fault{regulatest.Status(503), regulatest.Status(503), regulatest.Status(503)}, wantStatus: 503, wantRequests: 3},
		{name: "429 Retry-After then ok", faults: []regulatest.Fault{regulatest.RateLimited("4")}, wantRequests: 2, wantWaits: []time.Duration{4 * time.Second}},
		{name: "malformed JSON", faults: []regulatest.Fault{regulatest.MalformedJSON()}, wantErr: httpx.ErrMalformed, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, regulatest.Options{}, nil)
			e.Stand.Inject(tt.faults...)
			r, err := e.Client.Process(context.Background(), [][]byte{page1}, "MrzOrOcr")
			switch {
			case tt.wantStatus != 0:
				var se *httpx.StatusError
				if !errors.As(err, &se) || se.StatusCode != tt.wantStatus {
					t.Errorf("Process = %v, want status %d", err, tt.wantStatus)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Process = %v, want %v", err, tt.wantErr)
				}
			default:
				if err != nil || !r.Passed() {
					t.Errorf("Process = %v, %v; want success after retries", r, err)
				}
			}
			if n := e.Stand.Requests(); n != tt.wantRequests {
				t.Errorf("requests = %d, want %d", n, tt.wantRequests)
			}
			if tt.wantWaits != nil && fmt.Sprint(e.Sleep.Waits()) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits = %v, want %v", e.Sleep.Waits(), tt.wantWaits)
			}
		})
	}
}

func TestProcessTimeout(t *testing.T) {
	t.Run("context", func(t *testing.T) {
		e := newEnv(t, regulatest.Options{}, nil)
		e.Stand.SetFault(regulatest.Delay(time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := e.Client.Process(ctx, [][]byte{page1}, "FullProcess"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Process = %v, want context.DeadlineExceeded", err)
		}
		if n := e.Stand.Requests(); n != 1 {
			t.Errorf("requests = %d, want 1: a timeout is not retried", n)
		}
	})
	t.Run("config", func(t *testing.T) {
		e := newEnv(t, regulatest.Options{}, func(c *httpx.Config) { c.Timeout = 100 * time.Millisecond })
		e.Stand.SetFault(regulatest.Delay(time.Hour))
		if _, err := e.Client.Process(context.Background(), [][]byte{page1}, "FullProcess"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Process = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestProcessBreaker(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, func(c *httpx.Config) { c.Retries = 0 })
	e.Stand.SetFault(regulatest.Status(503))
	ctx := context.Background()
	for i := range 3 {
		if _, err := e.Client.Process(ctx, [][]byte{page1}, "FullProcess"); err == nil || errors.Is(err, httpx.ErrUnavailable) {
			t.Fatalf("call %d = %v, want a 503", i, err)
		}
	}
	if _, err := e.Client.Process(ctx, [][]byte{page1}, "FullProcess"); !errors.Is(err, httpx.ErrUnavailable) {
		t.Fatalf("after 3 failures: %v, want ErrUnavailable", err)
	}
	if n := e.Stand.Requests(); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	e.Stand.SetFault(regulatest.Fault{})
	e.Clock.Advance(time.Minute)
	if _, err := e.Client.Process(ctx, [][]byte{page1}, "FullProcess"); err != nil {
		t.Fatalf("probe after the cool-down: %v, want success", err)
	}
	if got := e.Client.BreakerState(); got != httpx.Closed {
		t.Errorf("breaker = %v, want closed", got)
	}
}

func TestProcessRefusesBadInput(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	tests := []struct {
		name     string
		images   [][]byte
		scenario string
		want     error
	}{
		{name: "unknown scenario", images: [][]byte{page1}, scenario: "FullProces", want: ErrInvalidScenario},
		{name: "empty scenario", images: [][]byte{page1}, scenario: "", want: ErrInvalidScenario},
		{name: "no image", images: nil, scenario: "FullProcess", want: ErrInvalidImage},
		{name: "SVG", images: [][]byte{page1, []byte("<svg/>")}, scenario: "FullProcess", want: ErrInvalidImage},
		{name: "PDF", images: [][]byte{[]byte("%PDF-1.7\n%%EOF")}, scenario: "FullProcess", want: ErrInvalidImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.Client.Process(context.Background(), tt.images, tt.scenario); !errors.Is(err, tt.want) {
				t.Errorf("Process = %v, want %v", err, tt.want)
			}
		})
	}
	if n := e.Stand.Requests(); n != 0 {
		t.Errorf("requests = %d, want 0: bad input is refused before sending", n)
	}
}

// TestStandInRejectsIncompleteRequests sends, through the same plumbing,
// requests that break the spec, and checks the stand-in refuses them: a
// client that dropped a required field would fail these tests, not pass.
func TestStandInRejectsIncompleteRequests(t *testing.T) {
	stand := regulatest.NewDocReader(t, regulatest.Options{})
	img := map[string]any{"ImageData": map[string]any{"image": page1}}
	tests := []struct {
		name   string
		body   map[string]any
		reason string
	}{
		{name: "no scenario", body: map[string]any{"processParam": map[string]any{}, "List": []any{img}}, reason: `"scenario" is missing`},
		{name: "no processParam", body: map[string]any{"List": []any{img}}, reason: `"processParam" is missing`},
		{name: "no images", body: map[string]any{"processParam": map[string]any{"scenario": "FullProcess"}}, reason: "List"},
		{name: "image not base64 of an image", body: map[string]any{"processParam": map[string]any{"scenario": "FullProcess"}, "List": []any{map[string]any{"ImageData": map[string]any{"image": []byte("plain text")}}}}, reason: "not a JPEG or PNG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			httpxtest.WantRejected(t, stand.Server, "/api/process", tt.body, tt.reason)
		})
	}
}

func TestProcessMutualTLS(t *testing.T) {
	ca := testtls.NewCA(t, "idvault client CA")
	certFile, keyFile := ca.Issue(t, "idvault workflow", testtls.LeafOptions{Client: true}).Files(t)
	opts := regulatest.Options{ClientCAs: ca.Pool()}

	e := newEnv(t, opts, func(c *httpx.Config) {
		c.AllowLoopbackHTTP = false
		c.CertFile, c.KeyFile = certFile, keyFile
	})
	if !strings.HasPrefix(e.Stand.URL(), "https://") {
		t.Fatalf("stand-in URL %s is not https", e.Stand.URL())
	}
	if _, err := e.Client.Process(context.Background(), [][]byte{page1}, "FullProcess"); err != nil {
		t.Errorf("with a client certificate: %v, want success", err)
	}

	anon := newEnv(t, opts, func(c *httpx.Config) { c.AllowLoopbackHTTP = false })
	if _, err := anon.Client.Process(context.Background(), [][]byte{page1}, "FullProcess"); err == nil {
		t.Error("without a client certificate: success, want a handshake failure")
	}
	if n := anon.Stand.Requests(); n != 0 {
		t.Errorf("requests without a certificate = %d, want 0", n)
	}
}

// TestNoPersonalDataLeaks attacks the redaction claims: a Result printed in
// every verb or logged shows no field value or image, and decoding errors
// do not quote the value that broke them.
func TestNoPersonalDataLeaks(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	r, err := e.Client.Process(context.Background(), [][]byte{page1}, "FullProcess")
	if err != nil {
		t.Fatal(err)
	}
	var logs testlog.Buffer
	logs.JSONLogger().Info("processed", "result", r)
	printed := fmt.Sprintf("%v %+v %s %#v %d", r, r, r, r, r) + logs.String()
	for _, secret := range []string{"ERIKSSON", "L898902C3", "1974-08-12", "ANNA"} {
		if strings.Contains(printed, secret) {
			t.Errorf("printed or logged Result shows %q: %s", secret, printed)
		}
	}
	if !strings.Contains(logs.String(), r.TransactionID) {
		t.Errorf("log %s lacks the transaction id", logs.String())
	}

	const marker = "ERIKSSON-MARKER"
	c := httpxtest.Answering(t, `{"ProcessingFinished":1,"ContainerList":{"List":[{"result_type":36,"Text":{"fieldList":[{"fieldName":"Surname","value":{"`+marker+`":"`+marker+`"}}]}}]}}`, New)
	_, err = c.Process(context.Background(), [][]byte{page1}, "FullProcess")
	if !errors.Is(err, httpx.ErrMalformed) {
		t.Fatalf("Process = %v, want ErrMalformed", err)
	}
	if strings.Contains(err.Error(), marker) {
		t.Errorf("error %q quotes the response", err)
	}
}

// TestReadResult decodes answers that break the spec in one way each, and
// answers with the cases a real service produces that the stand-in does not.
func TestReadResult(t *testing.T) {
	status := func(s int) string { return fmt.Sprintf(`{"result_type":33,"Status":{"overallStatus":%d}}`, s) }
	answer := func(items ...string) string {
		return `{"ProcessingFinished":1,"TransactionInfo":{"TransactionID":"t-1"},"ContainerList":{"List":[` + strings.Join(items, ",") + `]}}`
	}
	portrait := func(source, b64 string) string {
		return `{"source":"` + source + `","value":"` + b64 + `","pageIndex":0,"lightIndex":6,"containerType":6}`
	}
	tests := []struct {
		name    string
		body    string
		wantErr error
		check   func(t *testing.T, r Result)
	}{
		{name: "no ContainerList", body: `{"ProcessingFinished":1}`, wantErr: httpx.ErrMalformed},
		{name: "no List", body: `{"ProcessingFinished":1,"ContainerList":{}}`, wantErr: httpx.ErrMalformed},
		{name: "no ProcessingFinished", body: `{"ContainerList":{"List":[]}}`, wantErr: httpx.ErrMalformed},
		{name: "not finished", body: `{"ProcessingFinished":0,"ContainerList":{"List":[` + status(1) + `]}}`, wantErr: ErrIncomplete},
		{name: "finished by timeout", body: `{"ProcessingFinished":2,"ContainerList":{"List":[` + status(1) + `]}}`, wantErr: ErrIncomplete},
		{name: "no Status", body: answer(), wantErr: ErrIncomplete},
		{name: "no result_type", body: answer(`{"Status":{"overallStatus":1}}`), wantErr: httpx.ErrMalformed},
		{name: "Status without overallStatus", body: answer(`{"result_type":33,"Status":{}}`), wantErr: httpx.ErrMalformed},
		{name: "overallStatus out of enum", body: answer(status(7)), wantErr: httpx.ErrMalformed},
		{name: "Text missing", body: answer(status(1), `{"result_type":36}`), wantErr: httpx.ErrMalformed},
		{name: "field without name", body: answer(status(1), `{"result_type":36,"Text":{"fieldList":[{"value":"X"}]}}`), wantErr: httpx.ErrMalformed},
		{name: "field without value", body: answer(status(1), `{"result_type":36,"Text":{"fieldList":[{"fieldName":"Surname"}]}}`), wantErr: httpx.ErrMalformed},
		{name: "Images missing", body: answer(status(1), `{"result_type":37}`), wantErr: httpx.ErrMalformed},
		{name: "image field without type", body: answer(status(1), `{"result_type":37,"Images":{"fieldList":[{"valueList":[]}]}}`), wantErr: httpx.ErrMalformed},
		{name: "portrait not base64", body: answer(status(1), `{"result_type":37,"Images":{"fieldList":[{"fieldType":201,"valueList":[`+portrait("VISUAL", "%%%")+`]}]}}`), wantErr: httpx.ErrMalformed},
		{name: "portrait value not a string", body: answer(status(1), `{"result_type":37,"Images":{"fieldList":[{"fieldType":201,"valueList":[{"source":"VISUAL","value":42}]}]}}`), wantErr: httpx.ErrMalformed},
		{name: "OneCandidate missing", body: answer(status(1), `{"result_type":9}`), wantErr: httpx.ErrMalformed},
		{name: "OneCandidate without ID", body: answer(status(1), `{"result_type":9,"OneCandidate":{"DocumentName":"X"}}`), wantErr: httpx.ErrMalformed},
		{
			name: "unknown containers ignored, first Status wins",
			body: answer(`{"result_type":85,"DocumentPosition":{"docFormat":2}}`, status(2), status(1), `{"result_type":1,"RawImageContainer":{"image":"AAAA"}}`),
			check: func(t *testing.T, r Result) {
				if r.OverallStatus != CheckNotDone || r.TransactionID != "t-1" || r.DocumentType != "" || r.Portrait != nil || len(r.Fields) != 0 {
					t.Errorf("Result = %+v", r)
				}
			},
		},
		{
			name: "RFID portrait preferred, ghost portrait ignored",
			body: answer(status(1), `{"result_type":37,"Images":{"fieldList":[`+
				`{"fieldType":210,"valueList":[`+portrait("VISUAL", "Z2hvc3Q=")+`]},`+
				`{"fieldType":201,"valueList":[`+portrait("VISUAL", "dmlzdWFs")+`,`+portrait("RFID", "cmZpZA==")+`]}]}}`),
			check: func(t *testing.T, r Result) {
				if string(r.Portrait) != "rfid" {
					t.Errorf("Portrait = %q, want the RFID one", r.Portrait)
				}
			},
		},
		{
			// Only the portrait's value is read: another image's is left
			// as it came, unread.
			name: "other images left unread",
			body: answer(status(1), `{"result_type":37,"Images":{"fieldList":[`+
				`{"fieldType":207,"valueList":[{"source":"VISUAL","value":{"not":"a string"}}]},`+
				`{"fieldType":201,"valueList":[`+portrait("VISUAL", "dmlzdWFs")+`,{"source":"RFID","value":null}]}]}}`),
			check: func(t *testing.T, r Result) {
				if string(r.Portrait) != "visual" {
					t.Errorf("Portrait = %q, want the visual one (the RFID value is null)", r.Portrait)
				}
			},
		},
		{
			name: "field keys",
			body: answer(status(1), `{"result_type":36,"Text":{"fieldList":[`+
				`{"fieldName":"Surname","lcid":0,"value":"A"},{"fieldName":"Surname","lcid":0,"value":"B"},`+
				`{"fieldName":"Surname","lcid":1049,"value":"C"},{"fieldName":"Surname","lcid":1049,"lcidName":"Russian","value":"D"}]}}`),
			check: func(t *testing.T, r Result) {
				want := map[string]string{"Surname": "A", "Surname (1049)": "C", "Surname (Russian)": "D"}
				if fmt.Sprint(r.Fields) != fmt.Sprint(want) {
					t.Errorf("Fields = %q, want %q", r.Fields, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p processResponse
			if err := json.Unmarshal([]byte(tt.body), &p); err != nil {
				t.Fatalf("fixture does not decode: %v", err)
			}
			r, err := p.result()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("result() = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("result() = %v", err)
			}
			tt.check(t, r)
		})
	}
}

func TestValidScenario(t *testing.T) {
	for s, want := range map[string]bool{"FullProcess": true, "MrzOrOcr": true, "LocateVisual_And_MrzOrOcr": true, "fullprocess": false, "": false} {
		if got := ValidScenario(s); got != want {
			t.Errorf("ValidScenario(%q) = %t, want %t", s, got, want)
		}
	}
}
