package regulatest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// maxRequestBytes bounds a request body the stand-ins read.
const maxRequestBytes = 256 << 20

// Specimen document identity returned by the Document Reader stand-in
// (OneCandidate.DocumentName and ID).
const (
	SpecimenDocumentName = "Utopia - ePassport (ICAO 9303 specimen)"
	SpecimenDocumentID   = 929030001
)

// textField is one Text (36) fieldList entry of the specimen.
type textField struct {
	fieldType int
	name      string
	lcid      int
	lcidName  string
	value     string
	mrz       bool
}

// specimenText is the specimen passport of ICAO Doc 9303 Part 4 (a
// fictitious holder of the fictitious state of Utopia), with a later expiry
// date. Field names are the TextFieldType descriptions of
// e-text-field-type.yml; the second Surname is the same field in another
// script (lcid 1025), as documents with two scripts have.
var specimenText = []textField{
	{fieldType: 1, name: "Issuing state code", value: "UTO", mrz: true},
	{fieldType: 2, name: "Document number", value: "L898902C3", mrz: true},
	{fieldType: 3, name: "Date of expiry", value: "2034-04-15", mrz: true},
	{fieldType: 5, name: "Date of birth", value: "1974-08-12", mrz: true},
	{fieldType: 8, name: "Surname", value: "ERIKSSON", mrz: true},
	{fieldType: 8, name: "Surname", lcid: 1025, lcidName: "Arabic (Saudi Arabia)", value: "إريكسون"},
	{fieldType: 9, name: "Given name(s)", value: "ANNA MARIA", mrz: true},
	{fieldType: 11, name: "Nationality", value: "UTOPIAN"},
	{fieldType: 12, name: "Sex", value: "F", mrz: true},
}

// expiredDate replaces the date of expiry in a BadDocument answer.
const expiredDate = "2012-04-15"

// SpecimenFields returns the Text (36) fields of the specimen in script
// lcid 0 (Latin), keyed by fieldName.
func SpecimenFields() map[string]string {
	m := make(map[string]string)
	for _, f := range specimenText {
		if f.lcid == 0 {
			m[f.name] = f.value
		}
	}
	return m
}

// DocReader is a stand-in Document Reader web service answering
// POST /api/process. FOR TESTS ONLY.
type DocReader struct {
	*Server
}

// NewDocReader starts a Document Reader stand-in that stops when tb ends.
func NewDocReader(tb testing.TB, opts Options) *DocReader {
	tb.Helper()
	d := &DocReader{}
	d.Server = start(tb, opts, d.serve)
	return d
}

// processRequest is what the stand-in keeps of a valid request.
type processRequest struct {
	resultTypes map[int]bool
	images      [][]byte
	tag         string
}

func (d *DocReader) serve(s *Server, w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/process" {
		s.reject(w, http.StatusNotFound, "path "+r.URL.Path+" is not /api/process", plainError)
		return
	}
	if status, reason := checkJSONRequest(r); status != 0 {
		s.reject(w, status, reason, plainError)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		s.reject(w, http.StatusBadRequest, "read body: "+err.Error(), plainError)
		return
	}
	req, err := parseProcessRequest(body)
	if err != nil {
		// The spec's 400: "Bad request. Check your input data."
		s.reject(w, http.StatusBadRequest, err.Error(), plainError)
		return
	}
	f := s.nextFault()
	if applyTransportFault(w, r, f) {
		return
	}
	writeJSON(w, processResponse(req, f))
}

// parseProcessRequest validates a ProcessRequest against p-process.yml.
func parseProcessRequest(body []byte) (processRequest, error) {
	var req processRequest
	top, err := decodeObject("ProcessRequest", body)
	if err != nil {
		return req, err
	}
	if err := top.checkKeys("ProcessRequest", processRequestProps, "processParam"); err != nil {
		return req, err
	}
	param, err := decodeObject("processParam", top["processParam"])
	if err != nil {
		return req, err
	}
	if err := param.checkKeys("processParam", processParamsProps, "scenario"); err != nil {
		return req, err
	}
	var scenario string
	if err := json.Unmarshal(param["scenario"], &scenario); err != nil || !scenarios[scenario] {
		return req, fmt.Errorf("processParam.scenario %s is not a Scenario", param["scenario"])
	}
	if raw, ok := param["resultTypeOutput"]; ok && string(raw) != "null" {
		var types []int
		if err := json.Unmarshal(raw, &types); err != nil {
			return req, fmt.Errorf("processParam.resultTypeOutput is not an array of integers")
		}
		req.resultTypes = make(map[int]bool)
		for _, t := range types {
			if !resultTypes[t] {
				return req, fmt.Errorf("processParam.resultTypeOutput: %d is not a Result", t)
			}
			req.resultTypes[t] = true
		}
	}
	if raw, ok := top["tag"]; ok {
		if err := json.Unmarshal(raw, &req.tag); err != nil {
			return req, fmt.Errorf("tag is not a string")
		}
	}
	// The stand-in reads images from List only; ImageUrls and ContainerList
	// (the other inputs the spec allows) are not supported.
	var list []json.RawMessage
	if err := json.Unmarshal(top["List"], &list); err != nil || len(list) == 0 {
		return req, fmt.Errorf(`required property "List" (ProcessRequestImage array) is missing or empty`)
	}
	for i, raw := range list {
		img, err := parseProcessRequestImage(i, raw)
		if err != nil {
			return req, err
		}
		req.images = append(req.images, img)
	}
	return req, nil
}

// parseProcessRequestImage validates List[i] and returns its image bytes.
func parseProcessRequestImage(i int, raw json.RawMessage) ([]byte, error) {
	where := fmt.Sprintf("List[%d]", i)
	item, err := decodeObject(where, raw)
	if err != nil {
		return nil, err
	}
	if err := item.checkKeys(where, processRequestImageProps, "ImageData"); err != nil {
		return nil, err
	}
	if raw, ok := item["light"]; ok {
		var light int
		if err := json.Unmarshal(raw, &light); err != nil || !lights[light] {
			return nil, fmt.Errorf("%s.light %s is not a Light", where, raw)
		}
	}
	if raw, ok := item["page_idx"]; ok {
		var page int
		if err := json.Unmarshal(raw, &page); err != nil || page < 0 {
			return nil, fmt.Errorf("%s.page_idx %s is not a page index", where, raw)
		}
	}
	data, err := decodeObject(where+".ImageData", item["ImageData"])
	if err != nil {
		return nil, err
	}
	if err := data.checkKeys(where+".ImageData", docImageDataProps, "image"); err != nil {
		return nil, err
	}
	var b64 string
	if err := json.Unmarshal(data["image"], &b64); err != nil {
		return nil, fmt.Errorf("%s.ImageData.image is not a string", where)
	}
	img, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s.ImageData.image is not base64", where)
	}
	if err := checkImage(img); err != nil {
		return nil, fmt.Errorf("%s.ImageData.image: %w", where, err)
	}
	return img, nil
}

// check is a CheckResult (common.yml): 0 ERROR, 1 OK, 2 WAS_NOT_DONE.
const (
	checkError   = 0
	checkOK      = 1
	checkNotDone = 2
)

// processResponse builds a ProcessResponse (p-process.yml) for req.
func processResponse(req processRequest, f Fault) map[string]any {
	want := func(t int) bool { return req.resultTypes == nil || req.resultTypes[t] }
	bad := f.kind == faultBadDocument
	list := []any{}
	if want(9) {
		list = append(list, documentTypeResult())
	}
	if want(36) {
		list = append(list, textResult(bad))
	}
	if want(37) {
		list = append(list, imagesResult(req.images[0], f.kind != faultNoFace))
	}
	if want(33) {
		list = append(list, statusResult(bad, len(req.images)))
	}
	return map[string]any{
		"ChipPage":           0,
		"CoreLibResultCode":  0,
		"ProcessingFinished": 1,
		"ContainerList":      map[string]any{"Count": len(list), "List": list},
		// TransactionInfo.example of p-process.yml, with a fresh id.
		"TransactionInfo": map[string]any{
			"ComputerName":  "7cded6852d20",
			"DateTime":      time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
			"TransactionID": uuid.NewString(),
			"UserName":      "user",
			"Tag":           req.tag,
		},
		"morePagesAvailable": 0,
		"elapsedTime":        187,
	}
}

// resultItem returns the ResultItem (rt.yml) fields of a container.
func resultItem(resultType int) map[string]any {
	return map[string]any{"result_type": resultType, "buf_length": 0, "light": 6, "list_idx": 0, "page_idx": 0}
}

func documentTypeResult() map[string]any {
	item := resultItem(9)
	// OneCandidate (rt-doc-type-old.yml); P is the spec's example value.
	item["OneCandidate"] = map[string]any{
		"DocumentName":  SpecimenDocumentName,
		"ID":            SpecimenDocumentID,
		"P":             0.9913095831871032,
		"Rotated180":    0,
		"RFID_Presence": 1,
		"FDSIDList": map[string]any{
			"ICAOCode":     "UTO",
			"Count":        1,
			"List":         []int{SpecimenDocumentID},
			"dType":        11, // PASSPORT
			"dFormat":      2,  // ID3
			"dMRZ":         true,
			"dDescription": "Passport",
			"dYear":        "2020",
			"dCountryName": "Utopia",
			"isDeprecated": false,
		},
		"NecessaryLights":             6,
		"CheckAuthenticity":           0,
		"UVExp":                       0,
		"AuthenticityNecessaryLights": 0,
		"OVIExp":                      0,
		"RotationAngle":               0,
	}
	return item
}

func textResult(bad bool) map[string]any {
	overall := checkOK
	if bad {
		overall = checkError
	}
	fields := make([]any, 0, len(specimenText))
	for i, f := range specimenText {
		value, status := f.value, checkOK
		if bad && f.fieldType == 3 {
			value, status = expiredDate, checkError
		}
		rect := map[string]any{"left": 40, "top": 60 + 30*i, "right": 400, "bottom": 85 + 30*i}
		values := []any{map[string]any{
			"source": "VISUAL", "value": value, "originalValue": value,
			"originalValidity": status, "pageIndex": 0, "probability": 97,
			"fieldRect": rect, "containerType": 17,
		}}
		validity := []any{map[string]any{"source": "VISUAL", "status": status}}
		comparison := []any{}
		if f.mrz {
			values = append(values, map[string]any{
				"source": "MRZ", "value": value, "originalValue": value,
				"originalValidity": status, "pageIndex": 0, "probability": 99,
				"containerType": 3,
			})
			validity = append(validity, map[string]any{"source": "MRZ", "status": status})
			comparison = append(comparison, map[string]any{"sourceLeft": "MRZ", "sourceRight": "VISUAL", "status": checkOK})
		}
		field := map[string]any{
			"fieldType": f.fieldType, "fieldName": f.name, "lcid": f.lcid,
			"status": status, "validityStatus": status, "comparisonStatus": checkOK,
			"value": value, "valueList": values, "validityList": validity,
			"comparisonList": comparison,
		}
		if f.lcidName != "" {
			field["lcidName"] = f.lcidName
		}
		fields = append(fields, field)
	}
	item := resultItem(36)
	item["Text"] = map[string]any{
		"status": overall, "validityStatus": overall, "comparisonStatus": checkOK,
		"dateFormat": "yyyy-mm-dd",
		"fieldList":  fields,
		"availableSourceList": []any{
			map[string]any{"source": "MRZ", "validityStatus": overall, "containerType": 3},
			map[string]any{"source": "VISUAL", "validityStatus": overall, "containerType": 17},
		},
	}
	return item
}

func imagesResult(front []byte, portrait bool) map[string]any {
	graphic := func(name string, fieldType int, img []byte, rect map[string]any) map[string]any {
		return map[string]any{
			"fieldName": name, "fieldType": fieldType, "valueCount": 1,
			"valueList": []any{map[string]any{
				"source": "VISUAL", "value": base64.StdEncoding.EncodeToString(img),
				"pageIndex": 0, "lightIndex": 6, "containerType": 6, "fieldRect": rect,
			}},
		}
	}
	var fields []any
	if portrait {
		fields = append(fields, graphic("Portrait", 201, specimenPortrait(), map[string]any{"left": 30, "top": 120, "right": 270, "bottom": 440}))
	}
	fields = append(fields, graphic("Document front side", 207, front, map[string]any{"left": 0, "top": 0, "right": 1250, "bottom": 880}))
	item := resultItem(37)
	item["Images"] = map[string]any{
		"fieldCount":           len(fields),
		"availableSourceCount": 1,
		"availableSourceList":  []any{map[string]any{"containerType": 6, "source": "VISUAL"}},
		"fieldList":            fields,
	}
	return item
}

func statusResult(bad bool, pages int) map[string]any {
	overall := checkOK
	if bad {
		overall = checkError
	}
	item := resultItem(33)
	item["Status"] = map[string]any{
		"overallStatus": overall,
		"optical":       overall,
		"portrait":      checkNotDone,
		"rfid":          checkNotDone,
		"stopList":      checkNotDone,
		"detailsOptical": map[string]any{
			"overallStatus": overall, "docType": checkOK, "expiry": overall,
			"imageQA": checkOK, "mrz": checkOK, "pagesCount": pages,
			"security": checkNotDone, "text": overall,
		},
		"age": checkNotDone,
		"detailsAge": map[string]any{
			"threshold": 0, "overThreshold": checkNotDone, "over18": checkNotDone,
			"over21": checkNotDone, "over25": checkNotDone, "over65": checkNotDone,
		},
		"mDL": checkNotDone,
	}
	return item
}
