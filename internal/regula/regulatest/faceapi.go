package regulatest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// FaceSDKResultCode values (common.yml) the stand-in answers with.
const (
	codeOK                = 0
	codeFaceNotDetected   = 2
	codeLessThanTwoImages = 224
)

const (
	defaultSimilarity     = 0.9372
	imageSourceDocPrinted = 1 // ImageSource DOCUMENT_PRINTED
	// detectElapsedTime is DetectResult.elapsedTime's example (detect.yml).
	detectElapsedTime = 0.84793560000000001
	livenessTag       = "idv-session-0001"
	// livenessStorage is the storage path layout liveness.yml describes.
	livenessStorage = "faceapi-session/year=2026/month=01/day=13/hour=10/minute=21/" + livenessTag + "/%s/%s"
)

// LivenessPending, given to SetLiveness, makes TransactionInfo.status null:
// the transaction has no verdict yet.
const LivenessPending = -1

// faceProcessScenarios is FaceQualityScenarios.enum (common.yml).
var faceProcessScenarios = set(
	"OldMode", "QualityFull", "QualityICAO", "QualityVisaSchengen",
	"QualityVisaUSA", "CropCentralFace", "CropAllFaces", "Thumbnail",
	"AttributesAll", "",
)

// FaceAPI is a stand-in Face API web service answering POST /api/match,
// POST /api/detect and GET /api/v2/liveness. FOR TESTS ONLY.
type FaceAPI struct {
	*Server

	mu         sync.Mutex
	similarity float64
	faces      int
	liveness   int
}

// NewFaceAPI starts a Face API stand-in that stops when tb ends. It answers
// matches with similarity 0.9372 (1 for identical images), detections with
// one face and liveness transactions with status 0 (confirmed).
func NewFaceAPI(tb testing.TB, opts Options) *FaceAPI {
	tb.Helper()
	f := &FaceAPI{similarity: defaultSimilarity, faces: 1}
	f.Server = start(tb, opts, f.serve)
	return f
}

// SetSimilarity sets the similarity of later matches of different images.
func (f *FaceAPI) SetSimilarity(v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.similarity = v
}

// SetFaces sets how many faces later detections find (at least 1; NoFace
// makes it 0).
func (f *FaceAPI) SetFaces(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faces = max(n, 1)
}

// SetLiveness sets TransactionInfo.status of later liveness answers: 0
// confirmed, 1 not confirmed, LivenessPending for null.
func (f *FaceAPI) SetLiveness(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.liveness = status
}

func (f *FaceAPI) serve(s *Server, w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/match":
		f.serveJSON(s, w, r, f.match)
	case "/api/detect":
		f.serveJSON(s, w, r, f.detect)
	case "/api/v2/liveness":
		f.serveLiveness(s, w, r)
	default:
		s.reject(w, http.StatusNotFound, "path "+r.URL.Path+" is not a Face API path", operationLog)
	}
}

// operationLog answers with an OperationLog body (common.yml, BadRequest).
func operationLog(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"statusCode": status,
		"type":       http.StatusText(status),
		"msg":        reason,
	})
}

// serveJSON validates a JSON POST with handle, which returns the function
// that builds the answer for a fault, or the reason to reject the request.
func (f *FaceAPI) serveJSON(s *Server, w http.ResponseWriter, r *http.Request, handle func(object) (func(Fault) map[string]any, error)) {
	if status, reason := checkJSONRequest(r); status != 0 {
		s.reject(w, status, reason, operationLog)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		s.reject(w, http.StatusBadRequest, "read body: "+err.Error(), operationLog)
		return
	}
	where := "request"
	top, err := decodeObject(where, body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, err.Error(), operationLog)
		return
	}
	answer, err := handle(top)
	if err != nil {
		s.reject(w, http.StatusBadRequest, err.Error(), operationLog)
		return
	}
	fault := s.nextFault()
	if applyTransportFault(w, r, fault) {
		return
	}
	if fault.kind == faultResultCode {
		writeJSON(w, map[string]any{"code": fault.code})
		return
	}
	writeJSON(w, answer(fault))
}

// decodeFaceImage decodes an ImageData (common.yml: a base64 string) and
// checks it is a real image.
func decodeFaceImage(where string, raw json.RawMessage) ([]byte, error) {
	var b64 string
	if err := json.Unmarshal(raw, &b64); err != nil {
		return nil, fmt.Errorf("%s is not a base64 string", where)
	}
	img, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s is not base64", where)
	}
	if err := checkImage(img); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return img, nil
}

// matchImage is what the stand-in keeps of a MatchImage.
type matchImage struct {
	index int
	typ   int
	data  []byte
}

// match validates a MatchRequest (match.yml) and returns the builder of its
// MatchResponse.
func (f *FaceAPI) match(top object) (func(Fault) map[string]any, error) {
	if err := top.checkKeys("MatchRequest", matchRequestProps, "images"); err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(top["images"], &raws); err != nil {
		return nil, fmt.Errorf("MatchRequest.images is not an array")
	}
	images := make([]matchImage, 0, len(raws))
	seen := make(map[int]bool)
	for i, raw := range raws {
		where := fmt.Sprintf("images[%d]", i)
		item, err := decodeObject(where, raw)
		if err != nil {
			return nil, err
		}
		if err := item.checkKeys(where, matchImageProps, "data"); err != nil {
			return nil, err
		}
		img := matchImage{index: i, typ: imageSourceDocPrinted}
		if raw, ok := item["index"]; ok {
			if err := json.Unmarshal(raw, &img.index); err != nil || img.index < 0 {
				return nil, fmt.Errorf("%s.index %s is not a whole number", where, raw)
			}
		}
		if seen[img.index] {
			return nil, fmt.Errorf("%s.index %d is repeated", where, img.index)
		}
		seen[img.index] = true
		if raw, ok := item["type"]; ok {
			if err := json.Unmarshal(raw, &img.typ); err != nil || !imageSources[img.typ] {
				return nil, fmt.Errorf("%s.type %s is not an ImageSource", where, raw)
			}
		}
		if raw, ok := item["detectAll"]; ok {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return nil, fmt.Errorf("%s.detectAll is not a boolean", where)
			}
		}
		if img.data, err = decodeFaceImage(where+".data", item["data"]); err != nil {
			return nil, err
		}
		images = append(images, img)
	}
	return func(fault Fault) map[string]any { return f.matchResponse(images, fault) }, nil
}

// matchResponse builds a MatchResponse (match.yml) for images.
func (f *FaceAPI) matchResponse(images []matchImage, fault Fault) map[string]any {
	if len(images) < 2 {
		return map[string]any{"code": codeLessThanTwoImages}
	}
	f.mu.Lock()
	similarity := f.similarity
	f.mu.Unlock()
	noFace := fault.kind == faultNoFace
	detections := make([]any, 0, len(images))
	for i, img := range images {
		d := map[string]any{"imageIndex": img.index, "status": codeOK, "faces": []any{face(0)}}
		if noFace && i == 1 {
			d["status"] = codeFaceNotDetected
			d["faces"] = []any{}
		}
		detections = append(detections, d)
	}
	results := []any{}
	if noFace {
		return map[string]any{"code": codeFaceNotDetected, "detections": detections, "results": results}
	}
	for i := range images {
		for j := i + 1; j < len(images); j++ {
			sim := similarity
			if bytes.Equal(images[i].data, images[j].data) {
				sim = 1
			}
			results = append(results, map[string]any{
				"firstIndex": images[i].index, "firstFaceIndex": 0, "first": images[i].typ,
				"secondIndex": images[j].index, "secondFaceIndex": 0, "second": images[j].typ,
				"score": 1 - sim, "similarity": sim,
			})
		}
	}
	return map[string]any{"code": codeOK, "detections": detections, "results": results}
}

// face returns a DetectionFace (match.yml).
func face(index int) map[string]any {
	return map[string]any{
		"faceIndex":     index,
		"landmarks":     [][]float64{{118, 152}, {178, 150}, {149, 190}, {124, 222}, {174, 221}},
		"rotationAngle": 2.1272900104522705,
		"roi":           []float64{88, 96, 124, 160},
	}
}

// detect validates a DetectRequest (detect.yml) and returns the builder of
// its DetectResponse. The spec does not mark image required, but the service
// cannot detect without one: the stand-in requires it.
func (f *FaceAPI) detect(top object) (func(Fault) map[string]any, error) {
	if err := top.checkKeys("DetectRequest", detectRequestProps, "image"); err != nil {
		return nil, err
	}
	scenario := ""
	if raw, ok := top["processParam"]; ok {
		param, err := decodeObject("processParam", raw)
		if err != nil {
			return nil, err
		}
		if err := param.checkKeys("processParam", faceProcessParamProps); err != nil {
			return nil, err
		}
		if raw, ok := param["scenario"]; ok {
			if err := json.Unmarshal(raw, &scenario); err != nil || !faceProcessScenarios[scenario] {
				return nil, fmt.Errorf("processParam.scenario %s is not a FaceQualityScenarios", raw)
			}
		}
		if raw, ok := param["onlyCentralFace"]; ok {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return nil, fmt.Errorf("processParam.onlyCentralFace is not a boolean")
			}
		}
	}
	if _, err := decodeFaceImage("image", top["image"]); err != nil {
		return nil, err
	}
	return func(fault Fault) map[string]any { return f.detectResponse(scenario, fault) }, nil
}

// detectResponse builds a DetectResponse (detect.yml).
func (f *FaceAPI) detectResponse(scenario string, fault Fault) map[string]any {
	f.mu.Lock()
	n := f.faces
	f.mu.Unlock()
	if fault.kind == faultNoFace {
		n = 0
	}
	detections := make([]any, 0, n)
	for i := range n {
		d := face(i)
		delete(d, "faceIndex")
		delete(d, "rotationAngle")
		detections = append(detections, d)
	}
	return map[string]any{
		"code": codeOK,
		"results": map[string]any{
			"detections":    detections,
			"detectorType":  1,
			"landmarksType": 1,
			"scenario":      scenario,
			"elapsedTime":   detectElapsedTime,
		},
	}
}

// serveLiveness answers GET /api/v2/liveness?transactionId= (liveness.yml)
// with a TransactionInfo.
func (f *FaceAPI) serveLiveness(s *Server, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.reject(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s, want GET", r.Method), operationLog)
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "transactionId" {
			s.reject(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q is not in the spec", k), operationLog)
			return
		}
	}
	id := q.Get("transactionId")
	if len(q["transactionId"]) != 1 {
		s.reject(w, http.StatusBadRequest, "required query parameter transactionId is missing or repeated", operationLog)
		return
	}
	if _, err := uuid.Parse(id); err != nil {
		s.reject(w, http.StatusBadRequest, "transactionId is not a uuid", operationLog)
		return
	}
	fault := s.nextFault()
	if applyTransportFault(w, r, fault) {
		return
	}
	f.mu.Lock()
	status := f.liveness
	f.mu.Unlock()
	info := map[string]any{
		"code":          codeOK,
		"tag":           livenessTag,
		"transactionId": id,
		"video":         fmt.Sprintf(livenessStorage, id, "video.webm"),
		"portrait":      fmt.Sprintf(livenessStorage, id, "portrait.jpg"),
		"age":           []any{map[string]any{"low": 28, "high": 34}},
		"metadata":      map[string]any{},
		"type":          0, // ACTIVE
		"status":        nil,
	}
	switch {
	case fault.kind == faultResultCode:
		info["code"] = fault.code
	case fault.kind == faultNoFace:
		info["code"] = codeFaceNotDetected
	case status != LivenessPending:
		info["status"] = status
	}
	writeJSON(w, info)
}
