package faceapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/regula/httpx/httpxtest"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/testenv/testtls"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type env = httpxtest.Env[*regulatest.FaceAPI, *Client]

// newEnv starts a stand-in and a client for it; edit changes the config.
func newEnv(t *testing.T, opts regulatest.Options, edit func(*httpx.Config)) env {
	t.Helper()
	return httpxtest.Wire(t, regulatest.NewFaceAPI(t, opts), New, edit)
}

var (
	portrait = regulatest.JPEG(96, 128)
	selfie   = regulatest.PNG(120, 160)
)

const txID = "4f0c2f9e-6c1b-4a53-9b8e-2d6f5b1a7c3e"

func TestMatch(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	ctx := context.Background()
	s, err := e.Client.Match(ctx, portrait, selfie)
	if err != nil {
		t.Fatalf("Match: %v (rejections %q)", err, e.Stand.Rejections())
	}
	if s != 0.9372 {
		t.Errorf("similarity = %v, want the stand-in's 0.9372", s)
	}
	if s, err := e.Client.Match(ctx, portrait, portrait); err != nil || s != 1 {
		t.Errorf("Match(same image) = %v, %v; want 1", s, err)
	}
	e.Stand.SetSimilarity(0.12)
	if s, err := e.Client.Match(ctx, portrait, selfie); err != nil || s != 0.12 {
		t.Errorf("Match after SetSimilarity(0.12) = %v, %v; want 0.12", s, err)
	}
}

func TestMatchResultCodes(t *testing.T) {
	tests := []struct {
		name  string
		fault regulatest.Fault
		want  error
		code  ResultCode
		image int
	}{
		{name: "face not detected", fault: regulatest.NoFace(), want: ErrNoFace, code: 2, image: -1},
		{name: "image decode error", fault: regulatest.ResultCode(6), want: ErrInvalidImage, code: 6, image: -1},
		{name: "closed eyes", fault: regulatest.ResultCode(230), want: ErrFaceQuality, code: 230, image: -1},
		{name: "faces not matched", fault: regulatest.ResultCode(237), want: ErrNotMatched, code: 237, image: -1},
		{name: "no license", fault: regulatest.ResultCode(200), want: ErrService, code: 200, image: -1},
		{name: "unknown code", fault: regulatest.ResultCode(999), want: ErrService, code: 999, image: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, regulatest.Options{}, nil)
			e.Stand.Inject(tt.fault)
			s, err := e.Client.Match(context.Background(), portrait, selfie)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Match = %v, %v; want %v", s, err, tt.want)
			}
			var rce *ResultCodeError
			if !errors.As(err, &rce) || rce.Code != tt.code || rce.Image != tt.image {
				t.Errorf("Match error = %#v, want ResultCodeError code %d image %d", err, tt.code, tt.image)
			}
			if n := e.Stand.Requests(); n != 1 {
				t.Errorf("requests = %d, want 1: result codes are answers, not retried", n)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	ctx := context.Background()
	if n, err := e.Client.Detect(ctx, selfie); err != nil || n != 1 {
		t.Errorf("Detect = %d, %v; want 1", n, err)
	}
	e.Stand.SetFaces(3)
	if n, err := e.Client.Detect(ctx, selfie); err != nil || n != 3 {
		t.Errorf("Detect = %d, %v; want 3", n, err)
	}
	e.Stand.Inject(regulatest.NoFace())
	if n, err := e.Client.Detect(ctx, selfie); !errors.Is(err, ErrNoFace) {
		t.Errorf("Detect with no face = %d, %v; want ErrNoFace, never a silent zero", n, err)
	}
	e.Stand.Inject(regulatest.ResultCode(2))
	if _, err := e.Client.Detect(ctx, selfie); !errors.Is(err, ErrNoFace) {
		t.Errorf("Detect with code 2 = %v; want ErrNoFace", err)
	}
}

func TestLiveness(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		fault      regulatest.Fault
		wantErr    error
		wantPassed bool
	}{
		{name: "confirmed", status: 0, wantPassed: true},
		{name: "not confirmed", status: 1, wantPassed: false},
		{name: "no verdict yet", status: regulatest.LivenessPending, wantErr: ErrNoVerdict},
		{name: "failed transaction", fault: regulatest.ResultCode(251), wantErr: ErrLivenessFailed},
		{name: "passive liveness failed", fault: regulatest.ResultCode(254), wantErr: ErrLivenessFailed},
		{name: "aborted transaction", fault: regulatest.ResultCode(252), wantErr: ErrLivenessFailed},
		{name: "face not detected", fault: regulatest.NoFace(), wantErr: ErrNoFace},
		{name: "5xx", fault: regulatest.Status(500), wantErr: &httpx.StatusError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, regulatest.Options{}, nil)
			e.Stand.SetLiveness(tt.status)
			e.Stand.Inject(tt.fault)
			r, err := e.Client.Liveness(context.Background(), txID)
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("Liveness = %v", err)
				}
				if r.Passed != tt.wantPassed || r.Status != tt.status || r.TransactionID != txID || r.Type != LivenessActive || r.Tag == "" || r.PortraitURL == "" {
					t.Errorf("Liveness = %+v, want Passed %t status %d for %s", r, tt.wantPassed, tt.status, txID)
				}
			case *httpx.StatusError:
				if !errors.As(err, &want) {
					t.Errorf("Liveness = %v, want a StatusError", err)
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Liveness = %+v, %v; want %v", r, err, tt.wantErr)
				}
				if r.Passed {
					t.Error("a failed Liveness reports Passed")
				}
			}
		})
	}
}

func TestLivenessRefusesBadID(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	for _, id := range []string{"", "12345", txID + "&tag=x", "../../api/match"} {
		if _, err := e.Client.Liveness(context.Background(), id); !errors.Is(err, ErrInvalidTransactionID) {
			t.Errorf("Liveness(%q) = %v, want ErrInvalidTransactionID", id, err)
		}
	}
	if n := e.Stand.Requests(); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

func TestRefusesNonImages(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	ctx := context.Background()
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)
	if _, err := e.Client.Match(ctx, portrait, svg); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("Match(SVG) = %v, want ErrInvalidImage", err)
	}
	if _, err := e.Client.Match(ctx, nil, selfie); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("Match(nil) = %v, want ErrInvalidImage", err)
	}
	if _, err := e.Client.Detect(ctx, []byte("GIF89a")); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("Detect(GIF) = %v, want ErrInvalidImage", err)
	}
	if n := e.Stand.Requests(); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name         string
		faults       []regulatest.Fault
		wantErr      error
		wantStatus   int
		wantRequests int
		wantWaits    string
	}{
		{name: "503 then ok", faults: []regulatest.Fault{regulatest.Status(503)}, wantRequests: 2},
		{name: "504 504 504", faults: []regulatest.Fault{regulatest.Status(504), regulatest.Status(504), regulatest.Status(504)}, wantStatus: 504, wantRequests: 3},
		{name: "500 not retried", faults: []regulatest.Fault{regulatest.Status(500)}, wantStatus: 500, wantRequests: 1},
		{name: "429 then ok", faults: []regulatest.Fault{regulatest.RateLimited("1")}, wantRequests: 2, wantWaits: "[1s]"},
		{name: "malformed JSON", faults: []regulatest.Fault{regulatest.MalformedJSON()}, wantErr: httpx.ErrMalformed, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, regulatest.Options{}, nil)
			e.Stand.Inject(tt.faults...)
			s, err := e.Client.Match(context.Background(), portrait, selfie)
			switch {
			case tt.wantStatus != 0:
				var se *httpx.StatusError
				if !errors.As(err, &se) || se.StatusCode != tt.wantStatus {
					t.Errorf("Match = %v, want status %d", err, tt.wantStatus)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Match = %v, want %v", err, tt.wantErr)
				}
			default:
				if err != nil || s == 0 {
					t.Errorf("Match = %v, %v; want success", s, err)
				}
			}
			if n := e.Stand.Requests(); n != tt.wantRequests {
				t.Errorf("requests = %d, want %d", n, tt.wantRequests)
			}
			if tt.wantWaits != "" && fmt.Sprint(e.Sleep.Waits()) != tt.wantWaits {
				t.Errorf("waits = %v, want %s", e.Sleep.Waits(), tt.wantWaits)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, nil)
	e.Stand.SetFault(regulatest.Delay(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.Client.Liveness(ctx, txID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Liveness = %v, want context.DeadlineExceeded", err)
	}
	if n := e.Stand.Requests(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestBreaker(t *testing.T) {
	e := newEnv(t, regulatest.Options{}, func(c *httpx.Config) { c.Retries = 0 })
	e.Stand.SetFault(regulatest.Status(502))
	ctx := context.Background()
	for range 3 {
		if _, err := e.Client.Detect(ctx, selfie); err == nil {
			t.Fatal("Detect succeeded against a failing service")
		}
	}
	if _, err := e.Client.Match(ctx, portrait, selfie); !errors.Is(err, httpx.ErrUnavailable) {
		t.Fatalf("after 3 failures: %v, want ErrUnavailable", err)
	}
	if n := e.Stand.Requests(); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	e.Stand.SetFault(regulatest.Fault{})
	e.Clock.Advance(time.Minute)
	if _, err := e.Client.Liveness(ctx, txID); err != nil {
		t.Fatalf("probe = %v, want success", err)
	}
	if got := e.Client.BreakerState(); got != httpx.Closed {
		t.Errorf("breaker = %v, want closed", got)
	}
}

// TestStandInRejectsIncompleteRequests proves the stand-in refuses what
// the real service would: a client that dropped a required field fails.
func TestStandInRejectsIncompleteRequests(t *testing.T) {
	stand := regulatest.NewFaceAPI(t, regulatest.Options{})
	tests := []struct {
		name   string
		path   string
		body   any
		reason string
	}{
		{name: "match without images", path: "/api/match", body: map[string]any{"tag": "s"}, reason: `"images" is missing`},
		{name: "match image without data", path: "/api/match", body: map[string]any{"images": []any{map[string]any{"index": 0, "data": portrait}, map[string]any{"index": 1}}}, reason: `"data" is missing`},
		{name: "match with a misspelled property", path: "/api/match", body: map[string]any{"images": []any{map[string]any{"index": 0, "data": portrait, "imageType": 1}}}, reason: `"imageType" is not in the spec`},
		{name: "detect without image", path: "/api/detect", body: map[string]any{"processParam": map[string]any{}}, reason: `"image" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			httpxtest.WantRejected(t, stand.Server, tt.path, tt.body, tt.reason)
		})
	}
}

func TestMutualTLS(t *testing.T) {
	ca := testtls.NewCA(t, "idvault client CA")
	certFile, keyFile := ca.Issue(t, "idvault workflow", testtls.LeafOptions{Client: true}).Files(t)
	opts := regulatest.Options{ClientCAs: ca.Pool()}
	e := newEnv(t, opts, func(c *httpx.Config) {
		c.AllowLoopbackHTTP = false
		c.CertFile, c.KeyFile = certFile, keyFile
	})
	if _, err := e.Client.Match(context.Background(), portrait, selfie); err != nil {
		t.Errorf("with a client certificate: %v", err)
	}
	anon := newEnv(t, opts, func(c *httpx.Config) { c.AllowLoopbackHTTP = false })
	if _, err := anon.Client.Match(context.Background(), portrait, selfie); err == nil {
		t.Error("without a client certificate: success, want a handshake failure")
	}
}

// fixed starts a real server answering every request with body.
func fixed(t *testing.T, body string) *Client {
	t.Helper()
	return httpxtest.Answering(t, body, New)
}

// TestAnswersOutsideTheSpec feeds answers the stand-in never sends, each
// wrong in one way, and checks none becomes a value.
func TestAnswersOutsideTheSpec(t *testing.T) {
	ctx := context.Background()
	face := `{"faceIndex":0,"roi":[1,2,3,4]}`
	det := func(i, status int, faces string) string {
		return fmt.Sprintf(`{"imageIndex":%d,"status":%d,"faces":[%s]}`, i, status, faces)
	}
	okDets := `"detections":[` + det(0, 0, face) + `,` + det(1, 0, face) + `]`
	matchTests := []struct {
		name string
		body string
		want error
	}{
		{name: "no code", body: `{` + okDets + `,"results":[{"firstIndex":0,"secondIndex":1,"similarity":0.9}]}`, want: httpx.ErrMalformed},
		{name: "detection status for image 1", body: `{"code":0,"detections":[` + det(0, 0, face) + `,` + det(1, 231, "") + `]}`, want: ErrFaceQuality},
		{name: "detection without faces", body: `{"code":0,"detections":[` + det(0, 0, face) + `,` + det(1, 0, "") + `],"results":[]}`, want: ErrNoFace},
		{name: "detection without status", body: `{"code":0,"detections":[{"imageIndex":0}]}`, want: httpx.ErrMalformed},
		{name: "no results", body: `{"code":0,` + okDets + `,"results":[]}`, want: httpx.ErrMalformed},
		{name: "result for other images", body: `{"code":0,` + okDets + `,"results":[{"firstIndex":0,"secondIndex":2,"similarity":0.9}]}`, want: httpx.ErrMalformed},
		{name: "no similarity", body: `{"code":0,` + okDets + `,"results":[{"firstIndex":0,"secondIndex":1,"score":0.1}]}`, want: httpx.ErrMalformed},
		{name: "similarity as a percentage", body: `{"code":0,` + okDets + `,"results":[{"firstIndex":0,"secondIndex":1,"similarity":93.7}]}`, want: httpx.ErrMalformed},
		{name: "negative similarity", body: `{"code":0,` + okDets + `,"results":[{"firstIndex":0,"secondIndex":1,"similarity":-0.1}]}`, want: httpx.ErrMalformed},
		{name: "similarity as a string", body: `{"code":0,` + okDets + `,"results":[{"firstIndex":0,"secondIndex":1,"similarity":"0.9"}]}`, want: httpx.ErrMalformed},
	}
	for _, tt := range matchTests {
		t.Run("match "+tt.name, func(t *testing.T) {
			s, err := fixed(t, tt.body).Match(ctx, portrait, selfie)
			if !errors.Is(err, tt.want) {
				t.Errorf("Match = %v, %v; want %v", s, err, tt.want)
			}
		})
	}
	t.Run("match reversed pair", func(t *testing.T) {
		s, err := fixed(t, `{"code":0,`+okDets+`,"results":[{"firstIndex":1,"secondIndex":0,"similarity":0.81}]}`).Match(ctx, portrait, selfie)
		if err != nil || s != 0.81 {
			t.Errorf("Match = %v, %v; want 0.81", s, err)
		}
	})
	detectTests := []struct {
		name string
		body string
		want error
	}{
		{name: "no code", body: `{"results":{"detections":[{}]}}`, want: httpx.ErrMalformed},
		{name: "no results", body: `{"code":0}`, want: httpx.ErrMalformed},
		{name: "no detections", body: `{"code":0,"results":{}}`, want: httpx.ErrMalformed},
	}
	for _, tt := range detectTests {
		t.Run("detect "+tt.name, func(t *testing.T) {
			n, err := fixed(t, tt.body).Detect(ctx, selfie)
			if !errors.Is(err, tt.want) {
				t.Errorf("Detect = %d, %v; want %v", n, err, tt.want)
			}
		})
	}
	livenessTests := []struct {
		name string
		body string
		want error
	}{
		{name: "another transaction", body: `{"code":0,"status":0,"transactionId":"00000000-0000-4000-8000-000000000000"}`, want: httpx.ErrMalformed},
		{name: "no transaction id", body: `{"code":0,"status":0}`, want: httpx.ErrMalformed},
		{name: "status out of range", body: `{"code":0,"status":2,"transactionId":"` + txID + `"}`, want: httpx.ErrMalformed},
		{name: "type out of range", body: `{"code":0,"status":0,"type":7,"transactionId":"` + txID + `"}`, want: httpx.ErrMalformed},
		{name: "null status", body: `{"code":0,"status":null,"transactionId":"` + txID + `"}`, want: ErrNoVerdict},
	}
	for _, tt := range livenessTests {
		t.Run("liveness "+tt.name, func(t *testing.T) {
			r, err := fixed(t, tt.body).Liveness(ctx, txID)
			if !errors.Is(err, tt.want) || r.Passed {
				t.Errorf("Liveness = %+v, %v; want %v", r, err, tt.want)
			}
		})
	}
	t.Run("liveness without code, passive", func(t *testing.T) {
		r, err := fixed(t, `{"status":0,"type":1,"transactionId":"`+strings.ToUpper(txID)+`"}`).Liveness(ctx, txID)
		if err != nil || !r.Passed || r.Type != LivenessPassive {
			t.Errorf("Liveness = %+v, %v; want a passed passive transaction", r, err)
		}
	})
}

// TestResultCodeTable checks the code table against the spec's enum and
// that every code falls in exactly one category.
func TestResultCodeTable(t *testing.T) {
	specCodes := []int{0, 1, 2, 3, 4, 5, 6, 7, 199, 200, 201, 202, 203, 224, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254}
	if len(resultCodeNames) != len(specCodes) {
		t.Errorf("%d names, want the spec's %d codes", len(resultCodeNames), len(specCodes))
	}
	cats := []error{ErrNoFace, ErrInvalidImage, ErrFaceQuality, ErrNotMatched, ErrLivenessFailed, ErrService}
	for _, c := range specCodes {
		code := ResultCode(c)
		if code.String() == "UNKNOWN" {
			t.Errorf("code %d has no name", c)
		}
		err := codeError("op", code, -1)
		if c == 0 {
			if err != nil {
				t.Errorf("codeError(0) = %v, want nil", err)
			}
			continue
		}
		n := 0
		for _, cat := range cats {
			if errors.Is(err, cat) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("code %d (%s) is in %d categories, want 1", c, code, n)
		}
	}
	for code, want := range map[ResultCode]error{2: ErrNoFace, 1: ErrInvalidImage, 6: ErrInvalidImage, 240: ErrFaceQuality, 250: ErrLivenessFailed, 7: ErrService, 241: ErrService} {
		if err := codeError("op", code, -1); !errors.Is(err, want) {
			t.Errorf("code %d: %v, want %v", code, err, want)
		}
	}
	if got := (&ResultCodeError{Op: "match", Code: 2, Image: 1}).Error(); got != "faceapi: match: image 1: result code 2 (FR_FACE_NOT_DETECTED)" {
		t.Errorf("Error() = %q", got)
	}
}
