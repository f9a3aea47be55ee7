// Package docreader is a client of Regula's Document Reader web service: it
// sends document images to POST /api/process and reads the overall status,
// the document type, the text fields and the portrait from the answer.
//
// It follows Regula's public OpenAPI specification,
// github.com/regulaforensics/DocumentReader-web-openapi at tag v9.2.731
// (info.version 8.1.0):
//
//   - Request, p-process.yml ProcessRequest: {"processParam": {"scenario",
//     "resultTypeOutput"}, "List": [ProcessRequestImage]}, each image
//     {"ImageData": {"image": base64}, "light": 6 (WHITE), "page_idx": i}.
//     The client asks only for the result types it reads: DocumentType (9),
//     Status (33), Text (36) and Images (37) (rt.yml Result).
//   - Answer, ProcessResponse: ProcessingFinished MUST be 1 (FINISHED);
//     ContainerList.List holds ResultItems told apart by result_type:
//     33 Status.overallStatus (common.yml CheckResult: 0 ERROR, 1 OK,
//     2 WAS_NOT_DONE; rt-status.yml), 36 Text.fieldList[].fieldName, lcid,
//     lcidName and value (rt-text.yml), 37 Images.fieldList[] whose
//     fieldType is 201 PORTRAIT (e-graphic-field-type.yml) with
//     valueList[].source and value (base64; rt-images.yml), and
//     9 OneCandidate.DocumentName and ID (rt-doc-type-old.yml). The
//     transaction id is TransactionInfo.TransactionID.
//
// A Result holds personal data. It prints and logs as a summary without
// it; nothing in this package logs or puts into an error a field value or
// an image.
package docreader

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/idvault/idvault/internal/media"
	"github.com/idvault/idvault/internal/regula/httpx"
)

// Sentinel errors of Process. Transport, status, breaker and decoding errors
// come from httpx (httpx.ErrUnavailable, *httpx.StatusError,
// httpx.ErrMalformed, httpx.ErrTooLarge). Check them with errors.Is.
var (
	// ErrInvalidImage means an image given to Process is not a JPEG or PNG.
	ErrInvalidImage = errors.New("docreader: image is not a JPEG or PNG")
	// ErrInvalidScenario means the scenario is not one the spec defines.
	ErrInvalidScenario = errors.New("docreader: unknown scenario")
	// ErrIncomplete means the service answered without finishing: its
	// ProcessingFinished is not 1, or the answer has no Status result.
	ErrIncomplete = errors.New("docreader: processing incomplete")
)

// CheckResult values (common.yml CheckResult) of Result.OverallStatus.
const (
	CheckError   = 0
	CheckOK      = 1
	CheckNotDone = 2
)

// Result types (rt.yml Result) and the portrait's graphic field type
// (e-graphic-field-type.yml GraphicFieldType).
const (
	resultDocumentType = 9
	resultStatus       = 33
	resultText         = 36
	resultImages       = 37
	graphicPortrait    = 201
	lightWhite         = 6
	processingFinished = 1
)

// scenarios is common.yml Scenario.enum.
var scenarios = map[string]bool{
	"Mrz": true, "Barcode": true, "Locate": true, "Ocr": true, "DocType": true,
	"MrzOrBarcode": true, "MrzOrLocate": true, "MrzAndLocate": true,
	"BarcodeAndLocate": true, "MrzOrOcr": true, "MrzOrBarcodeOrOcr": true,
	"LocateVisual_And_MrzOrOcr": true, "FullProcess": true, "FullAuth": true,
	"RusStamp": true, "OcrFree": true, "CreditCard": true, "Capture": true,
	"DTC": true, "RFID": true,
}

// ValidScenario reports whether scenario is a processing scenario of the
// spec (common.yml Scenario), such as "FullProcess" or "MrzOrOcr".
func ValidScenario(scenario string) bool { return scenarios[scenario] }

// Result is what Process reads from an answer. It holds personal data:
// Fields and Portrait.
type Result struct {
	// OverallStatus is Status.overallStatus: CheckError, CheckOK or
	// CheckNotDone.
	OverallStatus int
	// DocumentType is OneCandidate.DocumentName of the first DocumentType
	// result, such as "Netherlands - Passport (2011)"; "" when the document
	// type was not determined.
	DocumentType string
	// DocumentID is OneCandidate.ID, Regula's template id; 0 with
	// DocumentType "".
	DocumentID int
	// Fields maps each Text field's fieldName to its value. A field in a
	// script other than Latin (lcid not 0) is keyed "fieldName (lcidName)",
	// such as "Surname (Arabic (Saudi Arabia))"; when a key repeats, the
	// first value is kept.
	Fields map[string]string
	// Portrait is the decoded portrait (graphic field 201): from the RFID
	// chip when the answer has it, else from the visual zone, else the first
	// source given. nil when the answer has no portrait.
	Portrait []byte
	// TransactionID is TransactionInfo.TransactionID.
	TransactionID string
}

// Passed reports whether the overall status is CheckOK.
func (r Result) Passed() bool { return r.OverallStatus == CheckOK }

// summary describes r without personal data.
func (r Result) summary() string {
	return fmt.Sprintf("docreader.Result{OverallStatus:%d DocumentID:%d Fields:%d Portrait:%t TransactionID:%s}",
		r.OverallStatus, r.DocumentID, len(r.Fields), r.Portrait != nil, r.TransactionID)
}

// Format prints a summary without personal data, for every verb.
func (r Result) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.summary())) }

// LogValue logs a summary without personal data.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("overallStatus", r.OverallStatus),
		slog.Int("documentID", r.DocumentID),
		slog.Int("fields", len(r.Fields)),
		slog.Bool("portrait", r.Portrait != nil),
		slog.String("transactionID", r.TransactionID),
	)
}

// Client calls one Document Reader service. It is safe for concurrent use.
type Client struct {
	http *httpx.Client
}

// New returns a Client for the service at cfg.URL. opts.Service defaults to
// "docreader".
func New(cfg httpx.Config, opts httpx.Options) (*Client, error) {
	if opts.Service == "" {
		opts.Service = "docreader"
	}
	c, err := httpx.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	return &Client{http: c}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.Close() }

// BreakerState returns the state of the client's circuit breaker.
func (c *Client) BreakerState() httpx.State { return c.http.BreakerState() }

// Process sends images (JPEG or PNG, one per page, in page order) for
// processing under scenario (see ValidScenario) and reads the answer.
//
// A document that fails its checks is not an error: Process returns its
// Result with OverallStatus CheckError. Errors are ErrInvalidImage and
// ErrInvalidScenario before anything is sent; ErrIncomplete; the httpx
// errors; or httpx.ErrMalformed for an answer that breaks the spec.
func (c *Client) Process(ctx context.Context, images [][]byte, scenario string) (Result, error) {
	if !ValidScenario(scenario) {
		return Result{}, fmt.Errorf("%w: %q", ErrInvalidScenario, scenario)
	}
	if len(images) == 0 {
		return Result{}, fmt.Errorf("%w: no image", ErrInvalidImage)
	}
	req := processRequest{
		ProcessParam: processParam{
			Scenario:         scenario,
			ResultTypeOutput: []int{resultDocumentType, resultStatus, resultText, resultImages},
		},
		List: make([]requestImage, len(images)),
	}
	for i, img := range images {
		if ct, ok := media.Sniff(img); !ok || (ct != media.JPEG && ct != media.PNG) {
			return Result{}, fmt.Errorf("%w: image %d", ErrInvalidImage, i)
		}
		req.List[i] = requestImage{ImageData: imageData{Image: img}, Light: lightWhite, PageIdx: i}
	}
	var resp processResponse
	if err := c.http.Do(ctx, http.MethodPost, "/api/process", nil, req, &resp); err != nil {
		return Result{}, err
	}
	return resp.result()
}

// processRequest is p-process.yml ProcessRequest, the properties sent.
type processRequest struct {
	ProcessParam processParam   `json:"processParam"`
	List         []requestImage `json:"List"`
}

// processParam is p-process.yml ProcessParams, the properties sent.
type processParam struct {
	Scenario         string `json:"scenario"`
	ResultTypeOutput []int  `json:"resultTypeOutput"`
}

// requestImage is p-process.yml ProcessRequestImage.
type requestImage struct {
	ImageData imageData `json:"ImageData"`
	Light     int       `json:"light"`
	PageIdx   int       `json:"page_idx"`
}

// imageData is common.yml ImageData; encoding/json writes []byte as
// standard base64, the spec's "format: base64".
type imageData struct {
	Image []byte `json:"image"`
}

// processResponse is p-process.yml ProcessResponse, the properties read.
type processResponse struct {
	ProcessingFinished *int `json:"ProcessingFinished"`
	ContainerList      *struct {
		List []resultItem `json:"List"`
	} `json:"ContainerList"`
	TransactionInfo *struct {
		TransactionID string `json:"TransactionID"`
	} `json:"TransactionInfo"`
}

// resultItem is the union of the rt.yml ResultItems read: result_type tells
// which one of the other fields the item MUST have.
type resultItem struct {
	ResultType   *int          `json:"result_type"`
	Status       *status       `json:"Status"`
	Text         *text         `json:"Text"`
	Images       *images       `json:"Images"`
	OneCandidate *oneCandidate `json:"OneCandidate"`
}

// status is rt-status.yml Status.
type status struct {
	OverallStatus *int `json:"overallStatus"`
}

// text is rt-text.yml Text.
type text struct {
	FieldList []textField `json:"fieldList"`
}

// textField is rt-text.yml TextField.
type textField struct {
	FieldName *string `json:"fieldName"`
	LCID      int     `json:"lcid"`
	LCIDName  string  `json:"lcidName"`
	Value     *string `json:"value"`
}

// images is rt-images.yml Images.
type images struct {
	FieldList []imagesField `json:"fieldList"`
}

// imagesField is rt-images.yml ImagesField.
type imagesField struct {
	FieldType *int               `json:"fieldType"`
	ValueList []imagesFieldValue `json:"valueList"`
}

// imagesFieldValue is rt-images.yml ImagesFieldValue. Value stays raw: of
// every image of an answer (the pages, their crops, signatures) only the
// portrait's is read, and unquoting the others, the bulk of an answer,
// took a third of its decoding.
type imagesFieldValue struct {
	Source string          `json:"source"`
	Value  json.RawMessage `json:"value"`
}

// oneCandidate is rt-doc-type-old.yml OneCandidate.
type oneCandidate struct {
	DocumentName string `json:"DocumentName"`
	ID           *int   `json:"ID"`
}

// malformed wraps httpx.ErrMalformed with what is wrong, never a value.
func malformed(format string, args ...any) error {
	return fmt.Errorf("docreader: %w: "+format, append([]any{httpx.ErrMalformed}, args...)...)
}

// result reads a Result from the answer.
func (p *processResponse) result() (Result, error) {
	if p.ContainerList == nil || p.ContainerList.List == nil {
		return Result{}, malformed("ContainerList.List is missing")
	}
	if p.ProcessingFinished == nil {
		return Result{}, malformed("ProcessingFinished is missing")
	}
	if *p.ProcessingFinished != processingFinished {
		return Result{}, fmt.Errorf("%w: ProcessingFinished is %d", ErrIncomplete, *p.ProcessingFinished)
	}
	r := Result{Fields: make(map[string]string)}
	if p.TransactionInfo != nil {
		r.TransactionID = p.TransactionInfo.TransactionID
	}
	haveStatus, haveType, havePortrait := false, false, false
	for i, item := range p.ContainerList.List {
		if item.ResultType == nil {
			return Result{}, malformed("ContainerList.List[%d].result_type is missing", i)
		}
		switch t := *item.ResultType; t {
		case resultStatus:
			if item.Status == nil || item.Status.OverallStatus == nil {
				return Result{}, malformed("ContainerList.List[%d]: Status.overallStatus is missing", i)
			}
			s := *item.Status.OverallStatus
			if s != CheckError && s != CheckOK && s != CheckNotDone {
				return Result{}, malformed("ContainerList.List[%d]: overallStatus %d is not a CheckResult", i, s)
			}
			if !haveStatus {
				r.OverallStatus, haveStatus = s, true
			}
		case resultText:
			if item.Text == nil {
				return Result{}, malformed("ContainerList.List[%d]: Text is missing", i)
			}
			if err := readFields(r.Fields, i, item.Text.FieldList); err != nil {
				return Result{}, err
			}
		case resultImages:
			if item.Images == nil {
				return Result{}, malformed("ContainerList.List[%d]: Images is missing", i)
			}
			if havePortrait {
				continue
			}
			portrait, err := readPortrait(i, item.Images.FieldList)
			if err != nil {
				return Result{}, err
			}
			r.Portrait, havePortrait = portrait, portrait != nil
		case resultDocumentType:
			if item.OneCandidate == nil || item.OneCandidate.ID == nil {
				return Result{}, malformed("ContainerList.List[%d]: OneCandidate.ID is missing", i)
			}
			if !haveType {
				r.DocumentType, r.DocumentID, haveType = item.OneCandidate.DocumentName, *item.OneCandidate.ID, true
			}
		}
	}
	if !haveStatus {
		return Result{}, fmt.Errorf("%w: no Status result", ErrIncomplete)
	}
	return r, nil
}

// readFields adds Text fieldList entries to fields.
func readFields(fields map[string]string, item int, list []textField) error {
	for j, f := range list {
		if f.FieldName == nil || *f.FieldName == "" || f.Value == nil {
			return malformed("ContainerList.List[%d].Text.fieldList[%d]: fieldName or value is missing", item, j)
		}
		key := *f.FieldName
		if f.LCID != 0 {
			name := f.LCIDName
			if name == "" {
				name = strconv.Itoa(f.LCID)
			}
			key += " (" + name + ")"
		}
		if _, dup := fields[key]; !dup {
			fields[key] = *f.Value
		}
	}
	return nil
}

// sourcePreference orders portrait sources: the chip's copy is the
// issuer's original, the visual zone's a photograph of a print.
var sourcePreference = map[string]int{"RFID": 2, "VISUAL": 1}

// readPortrait returns the preferred portrait of an Images fieldList, or
// nil when it has none.
func readPortrait(item int, list []imagesField) ([]byte, error) {
	best, bestRank := "", -1
	for j, f := range list {
		if f.FieldType == nil {
			return nil, malformed("ContainerList.List[%d].Images.fieldList[%d].fieldType is missing", item, j)
		}
		if *f.FieldType != graphicPortrait {
			continue
		}
		for k, v := range f.ValueList {
			var value string
			if v.Value != nil {
				if err := json.Unmarshal(v.Value, &value); err != nil {
					return nil, malformed("ContainerList.List[%d].Images.fieldList[%d].valueList[%d].value is not a string", item, j, k)
				}
			}
			if value == "" {
				continue
			}
			if rank := sourcePreference[v.Source]; rank > bestRank {
				best, bestRank = value, rank
			}
		}
	}
	if bestRank < 0 {
		return nil, nil
	}
	img, err := base64.StdEncoding.DecodeString(best)
	if err != nil {
		return nil, malformed("ContainerList.List[%d]: portrait value is not base64", item)
	}
	return img, nil
}
