package regulatest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// send makes one real HTTP request and returns the status and body.
func send(t *testing.T, method, url, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

var (
	validJPEG = base64.StdEncoding.EncodeToString(JPEG(32, 24))
	validPNG  = base64.StdEncoding.EncodeToString(PNG(16, 16))
	truncated = base64.StdEncoding.EncodeToString(JPEG(64, 64)[:200])
	notImage  = base64.StdEncoding.EncodeToString([]byte("<svg xmlns='http://www.w3.org/2000/svg'/>"))
)

// processBody returns a ProcessRequest with one image, each part
// replaceable.
func processBody(param, image string) string {
	return `{"processParam":` + param + `,"List":[{"ImageData":{"image":"` + image + `"},"light":6,"page_idx":0}]}`
}

const fullProcess = `{"scenario":"FullProcess"}`

// TestDocReaderRejects proves the stand-in validates: each request breaks
// the spec in one way and must be refused with the reason recorded.
func TestDocReaderRejects(t *testing.T) {
	d := NewDocReader(t, Options{})
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantReason  string
	}{
		{name: "GET", method: http.MethodGet, body: "", wantStatus: 405, wantReason: "want POST"},
		{name: "wrong path", path: "/api/processs", body: processBody(fullProcess, validJPEG), wantStatus: 404, wantReason: "not /api/process"},
		{name: "text content type", contentType: "text/plain", body: processBody(fullProcess, validJPEG), wantStatus: 400, wantReason: "want application/json"},
		{name: "not JSON", body: "scenario=FullProcess", wantStatus: 400, wantReason: "not a JSON object"},
		{name: "missing processParam", body: `{"List":[{"ImageData":{"image":"` + validJPEG + `"}}]}`, wantStatus: 400, wantReason: `"processParam" is missing`},
		{name: "missing scenario", body: processBody(`{"resultTypeOutput":[33]}`, validJPEG), wantStatus: 400, wantReason: `"scenario" is missing`},
		{name: "null scenario", body: processBody(`{"scenario":null}`, validJPEG), wantStatus: 400, wantReason: `"scenario" is missing`},
		{name: "unknown scenario", body: processBody(`{"scenario":"FullProces"}`, validJPEG), wantStatus: 400, wantReason: "is not a Scenario"},
		{name: "unknown request property", body: `{"processParams":` + fullProcess + `,"processParam":` + fullProcess + `}`, wantStatus: 400, wantReason: `"processParams" is not in the spec`},
		{name: "unknown processParam property", body: processBody(`{"scenario":"FullProcess","resultTypes":[33]}`, validJPEG), wantStatus: 400, wantReason: `"resultTypes" is not in the spec`},
		{name: "unknown result type", body: processBody(`{"scenario":"FullProcess","resultTypeOutput":[33,2]}`, validJPEG), wantStatus: 400, wantReason: "2 is not a Result"},
		{name: "missing List", body: `{"processParam":` + fullProcess + `}`, wantStatus: 400, wantReason: `"List" (ProcessRequestImage array) is missing`},
		{name: "empty List", body: `{"processParam":` + fullProcess + `,"List":[]}`, wantStatus: 400, wantReason: `"List" (ProcessRequestImage array) is missing`},
		{name: "unknown image property", body: `{"processParam":` + fullProcess + `,"List":[{"ImageData":{"image":"` + validJPEG + `"},"lights":6}]}`, wantStatus: 400, wantReason: `"lights" is not in the spec`},
		{name: "missing ImageData", body: `{"processParam":` + fullProcess + `,"List":[{"light":6}]}`, wantStatus: 400, wantReason: `"ImageData" is missing`},
		{name: "missing image", body: `{"processParam":` + fullProcess + `,"List":[{"ImageData":{"format":"jpg"}}]}`, wantStatus: 400, wantReason: `"image" is missing`},
		{name: "bad light", body: `{"processParam":` + fullProcess + `,"List":[{"ImageData":{"image":"` + validJPEG + `"},"light":5}]}`, wantStatus: 400, wantReason: "is not a Light"},
		{name: "negative page", body: `{"processParam":` + fullProcess + `,"List":[{"ImageData":{"image":"` + validJPEG + `"},"page_idx":-1}]}`, wantStatus: 400, wantReason: "is not a page index"},
		{name: "image not base64", body: processBody(fullProcess, "not base64!"), wantStatus: 400, wantReason: "is not base64"},
		{name: "image not an image", body: processBody(fullProcess, notImage), wantStatus: 400, wantReason: "not a JPEG or PNG"},
		{name: "truncated JPEG", body: processBody(fullProcess, truncated), wantStatus: 400, wantReason: "does not decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, ct := tt.method, tt.path, tt.contentType
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/api/process"
			}
			if ct == "" {
				ct = "application/json"
			}
			before := d.Requests()
			status, _ := send(t, method, d.URL()+path, ct, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			if got := d.Requests() - before; got != 1 {
				t.Errorf("Requests() grew by %d, want 1", got)
			}
			rej := d.Rejections()
			if len(rej) == 0 || !strings.Contains(rej[len(rej)-1], tt.wantReason) {
				t.Errorf("last rejection = %q, want it to contain %q", rej, tt.wantReason)
			}
		})
	}
}

// requireKeys fails unless obj has every key.
func requireKeys(t *testing.T, where string, obj any, keys ...string) map[string]any {
	t.Helper()
	m, ok := obj.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want an object", where, obj)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks required property %q", where, k)
		}
	}
	return m
}

// TestDocReaderAnswerHasRequiredProperties checks the stand-in's answer
// against the required lists of the spec's schemas.
func TestDocReaderAnswerHasRequiredProperties(t *testing.T) {
	d := NewDocReader(t, Options{})
	status, body := send(t, http.MethodPost, d.URL()+"/api/process", "application/json",
		`{"processParam":{"scenario":"FullProcess"},"List":[{"ImageData":{"image":"`+validJPEG+`"}},{"ImageData":{"image":"`+validPNG+`"}}]}`)
	if status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", status, body)
	}
	var resp any
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	top := requireKeys(t, "ProcessResponse", resp, "ChipPage", "ProcessingFinished", "ContainerList", "TransactionInfo", "morePagesAvailable", "elapsedTime")
	cl := requireKeys(t, "ContainerList", top["ContainerList"], "List")
	seen := make(map[float64]bool)
	for _, item := range cl["List"].([]any) {
		it := requireKeys(t, "ResultItem", item, "result_type")
		rt := it["result_type"].(float64)
		seen[rt] = true
		switch rt {
		case 33:
			s := requireKeys(t, "StatusItem", it, "Status")
			st := requireKeys(t, "Status", s["Status"], "overallStatus", "optical", "portrait", "rfid", "stopList", "detailsOptical", "age", "detailsAge", "mDL")
			requireKeys(t, "detailsOptical", st["detailsOptical"], "overallStatus", "docType", "expiry", "imageQA", "mrz", "pagesCount", "security", "text")
			requireKeys(t, "DetailsAge", st["detailsAge"], "threshold", "overThreshold", "over18", "over21", "over25", "over65")
			if got := st["detailsOptical"].(map[string]any)["pagesCount"]; got != 2.0 {
				t.Errorf("pagesCount = %v, want 2", got)
			}
		case 36:
			txt := requireKeys(t, "Text", requireKeys(t, "TextItem", it, "Text")["Text"], "status", "validityStatus", "comparisonStatus", "dateFormat", "fieldList", "availableSourceList")
			for _, f := range txt["fieldList"].([]any) {
				tf := requireKeys(t, "TextField", f, "fieldType", "fieldName", "lcid", "status", "validityStatus", "comparisonStatus", "value", "valueList", "validityList", "comparisonList")
				for _, v := range tf["valueList"].([]any) {
					requireKeys(t, "TextFieldValue", v, "value", "pageIndex", "source", "originalValidity", "probability")
				}
			}
		case 37:
			imgs := requireKeys(t, "Images", requireKeys(t, "ImagesItem", it, "Images")["Images"], "availableSourceList", "fieldList")
			for _, f := range imgs["fieldList"].([]any) {
				fl := requireKeys(t, "ImagesField", f, "fieldName", "fieldType", "valueList")
				for _, v := range fl["valueList"].([]any) {
					requireKeys(t, "ImagesFieldValue", v, "containerType", "lightIndex", "pageIndex", "source")
				}
			}
		case 9:
			oc := requireKeys(t, "OneCandidate", requireKeys(t, "OneCandidateItem", it, "OneCandidate")["OneCandidate"],
				"ID", "P", "Rotated180", "RFID_Presence", "NecessaryLights", "CheckAuthenticity", "UVExp", "AuthenticityNecessaryLights", "OVIExp")
			requireKeys(t, "FDSIDList", oc["FDSIDList"], "ICAOCode", "dType", "dFormat", "dMRZ", "dCountryName", "isDeprecated")
		}
	}
	for _, rt := range []float64{9, 33, 36, 37} {
		if !seen[rt] {
			t.Errorf("ContainerList lacks result_type %v", rt)
		}
	}
}

func TestDocReaderResultTypeOutput(t *testing.T) {
	d := NewDocReader(t, Options{})
	status, body := send(t, http.MethodPost, d.URL()+"/api/process", "application/json", processBody(`{"scenario":"Mrz","resultTypeOutput":[33]}`, validJPEG))
	if status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	var resp struct {
		ContainerList struct {
			List []struct {
				ResultType int `json:"result_type"`
			}
		}
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.ContainerList.List) != 1 || resp.ContainerList.List[0].ResultType != 33 {
		t.Errorf("List = %+v, want only result_type 33", resp.ContainerList.List)
	}
}

// TestFaults checks that Inject applies faults in order, one per valid
// request, before SetFault's, and that an invalid request takes none.
func TestFaults(t *testing.T) {
	d := NewDocReader(t, Options{})
	valid := processBody(fullProcess, validJPEG)
	d.Inject(Status(503), RateLimited("7"))
	d.SetFault(Status(502))
	if status, _ := send(t, http.MethodPost, d.URL()+"/api/process", "application/json", processBody(`{}`, validJPEG)); status != 400 {
		t.Fatalf("invalid request: status = %d, want 400", status)
	}
	want := []int{503, 429, 502, 502}
	for i, w := range want {
		if status, _ := send(t, http.MethodPost, d.URL()+"/api/process", "application/json", valid); status != w {
			t.Errorf("request %d: status = %d, want %d", i, status, w)
		}
	}
	d.SetFault(Fault{})
	if status, _ := send(t, http.MethodPost, d.URL()+"/api/process", "application/json", valid); status != 200 {
		t.Errorf("after clearing: status = %d, want 200", status)
	}
	d.Inject(MalformedJSON())
	_, body := send(t, http.MethodPost, d.URL()+"/api/process", "application/json", valid)
	if json.Valid(body) {
		t.Errorf("MalformedJSON answered valid JSON %q", body)
	}
}

func matchBody(images ...string) string {
	return `{"images":[` + strings.Join(images, ",") + `]}`
}

// TestFaceAPIRejects proves the Face API stand-in validates.
func TestFaceAPIRejects(t *testing.T) {
	f := NewFaceAPI(t, Options{})
	img0 := `{"index":0,"type":1,"data":"` + validJPEG + `"}`
	img1 := `{"index":1,"type":3,"data":"` + validPNG + `"}`
	uuid := "4f0c2f9e-6c1b-4a53-9b8e-2d6f5b1a7c3e"
	tests := []struct {
		name       string
		method     string
		path       string
		ct         string
		body       string
		wantStatus int
		wantReason string
	}{
		{name: "match GET", method: http.MethodGet, path: "/api/match", wantStatus: 405, wantReason: "want POST"},
		{name: "match form", path: "/api/match", ct: "application/x-www-form-urlencoded", body: matchBody(img0, img1), wantStatus: 400, wantReason: "want application/json"},
		{name: "match missing images", path: "/api/match", body: `{"tag":"s1"}`, wantStatus: 400, wantReason: `"images" is missing`},
		{name: "match unknown property", path: "/api/match", body: `{"image":[],"images":[]}`, wantStatus: 400, wantReason: `"image" is not in the spec`},
		{name: "match images not array", path: "/api/match", body: `{"images":{}}`, wantStatus: 400, wantReason: "is not an array"},
		{name: "match image missing data", path: "/api/match", body: matchBody(img0, `{"index":1}`), wantStatus: 400, wantReason: `"data" is missing`},
		{name: "match image unknown property", path: "/api/match", body: matchBody(img0, `{"index":1,"data":"`+validPNG+`","source":3}`), wantStatus: 400, wantReason: `"source" is not in the spec`},
		{name: "match bad type", path: "/api/match", body: matchBody(img0, `{"index":1,"type":9,"data":"`+validPNG+`"}`), wantStatus: 400, wantReason: "is not an ImageSource"},
		{name: "match repeated index", path: "/api/match", body: matchBody(img0, `{"index":0,"data":"`+validPNG+`"}`), wantStatus: 400, wantReason: "is repeated"},
		{name: "match data not base64", path: "/api/match", body: matchBody(img0, `{"index":1,"data":"%%%"}`), wantStatus: 400, wantReason: "is not base64"},
		{name: "match data not image", path: "/api/match", body: matchBody(img0, `{"index":1,"data":"`+notImage+`"}`), wantStatus: 400, wantReason: "not a JPEG or PNG"},
		{name: "detect missing image", path: "/api/detect", body: `{"processParam":{}}`, wantStatus: 400, wantReason: `"image" is missing`},
		{name: "detect unknown processParam property", path: "/api/detect", body: `{"image":"` + validJPEG + `","processParam":{"onlyCentralFaces":true}}`, wantStatus: 400, wantReason: `"onlyCentralFaces" is not in the spec`},
		{name: "detect bad scenario", path: "/api/detect", body: `{"image":"` + validJPEG + `","processParam":{"scenario":"Best"}}`, wantStatus: 400, wantReason: "is not a FaceQualityScenarios"},
		{name: "detect truncated image", path: "/api/detect", body: `{"image":"` + truncated + `"}`, wantStatus: 400, wantReason: "does not decode"},
		{name: "liveness POST", method: http.MethodPost, path: "/api/v2/liveness?transactionId=" + uuid, wantStatus: 405, wantReason: "want GET"},
		{name: "liveness no id", method: http.MethodGet, path: "/api/v2/liveness", wantStatus: 400, wantReason: "transactionId is missing"},
		{name: "liveness id twice", method: http.MethodGet, path: "/api/v2/liveness?transactionId=" + uuid + "&transactionId=" + uuid, wantStatus: 400, wantReason: "repeated"},
		{name: "liveness id not uuid", method: http.MethodGet, path: "/api/v2/liveness?transactionId=12345", wantStatus: 400, wantReason: "not a uuid"},
		{name: "liveness unknown parameter", method: http.MethodGet, path: "/api/v2/liveness?transactionId=" + uuid + "&tag=x", wantStatus: 400, wantReason: `"tag" is not in the spec`},
		{name: "unknown path", path: "/api/compare", body: matchBody(img0, img1), wantStatus: 404, wantReason: "not a Face API path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, ct := tt.method, tt.ct
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" {
				ct = "application/json"
			}
			status, body := send(t, method, f.URL()+tt.path, ct, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			var log struct {
				StatusCode int    `json:"statusCode"`
				Msg        string `json:"msg"`
			}
			if err := json.Unmarshal(body, &log); err != nil || log.StatusCode != tt.wantStatus {
				t.Errorf("body %q is not an OperationLog for %d", body, tt.wantStatus)
			}
			rej := f.Rejections()
			if len(rej) == 0 || !strings.Contains(rej[len(rej)-1], tt.wantReason) {
				t.Errorf("last rejection = %q, want it to contain %q", rej, tt.wantReason)
			}
		})
	}
}

func TestFaceAPIAnswers(t *testing.T) {
	f := NewFaceAPI(t, Options{})
	img0 := `{"index":0,"type":1,"data":"` + validJPEG + `"}`
	img1 := `{"index":1,"type":3,"data":"` + validPNG + `"}`

	status, body := send(t, http.MethodPost, f.URL()+"/api/match", "application/json", matchBody(img0, img1))
	if status != 200 {
		t.Fatalf("match: status %d", status)
	}
	var m any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	mr := requireKeys(t, "MatchResponse", m, "code", "detections", "results")
	for _, d := range mr["detections"].([]any) {
		requireKeys(t, "MatchImageDetection", d, "imageIndex", "status")
	}
	res := mr["results"].([]any)
	if len(res) != 1 {
		t.Fatalf("match: %d results, want 1", len(res))
	}
	r := requireKeys(t, "MatchImageResult", res[0], "firstIndex", "secondIndex", "similarity")
	if r["similarity"] != defaultSimilarity {
		t.Errorf("similarity = %v, want %v", r["similarity"], defaultSimilarity)
	}

	status, body = send(t, http.MethodPost, f.URL()+"/api/match", "application/json", matchBody(img0))
	if status != 200 || !bytes.Contains(body, []byte(`"code":224`)) {
		t.Errorf("match of one image: status %d body %s, want code 224 (FACER_LESS_THAN_TWO_IMAGES_IN_REQUEST)", status, body)
	}

	f.SetFaces(3)
	status, body = send(t, http.MethodPost, f.URL()+"/api/detect", "application/json", `{"image":"`+validJPEG+`","processParam":{"onlyCentralFace":false}}`)
	if status != 200 {
		t.Fatalf("detect: status %d", status)
	}
	var d any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	dr := requireKeys(t, "DetectResponse", d, "code", "results")
	dets := requireKeys(t, "DetectResult", dr["results"], "detections")["detections"].([]any)
	if len(dets) != 3 {
		t.Errorf("detect: %d detections, want 3", len(dets))
	}
	for _, det := range dets {
		requireKeys(t, "Detection", det, "landmarks", "roi")
	}

	id := "4f0c2f9e-6c1b-4a53-9b8e-2d6f5b1a7c3e"
	f.SetLiveness(LivenessPending)
	status, body = send(t, http.MethodGet, f.URL()+"/api/v2/liveness?transactionId="+id, "", "")
	if status != 200 || !bytes.Contains(body, []byte(`"status":null`)) || !bytes.Contains(body, []byte(id)) {
		t.Errorf("liveness: status %d body %s, want status null for %s", status, body, id)
	}
}
