// Package faceapi is a client of Regula's Face API web service: face match
// (POST /api/match), face detection (POST /api/detect) and the result of a
// liveness transaction (GET /api/v2/liveness?transactionId=).
//
// It follows Regula's public OpenAPI specification,
// github.com/regulaforensics/FaceSDK-web-openapi at tag v8.2.603
// (info.version 7.2.0):
//
//   - match.yml: MatchRequest {"images": [MatchImage {"index", "type",
//     "data"}]}, data an ImageData (common.yml: a base64 string). The answer
//     MatchResponse has the FaceSDKResult "code", "detections"
//     [{"imageIndex", "status", "faces"}] and "results" [{"firstIndex",
//     "secondIndex", "similarity", "score"}].
//   - detect.yml: DetectRequest {"image", "processParam":
//     {"onlyCentralFace"}}; DetectResponse {"code", "results":
//     {"detections": [...]}}.
//   - liveness.yml: TransactionInfo {"code", "status" (0 confirmed, 1 not,
//     null by default), "transactionId", "tag", "type" (0 active, 1
//     passive), "portrait"}. The spec defines no liveness score.
//   - common.yml: FaceSDKResultCode, mapped to the categories in codes.go.
//
// A non-zero result code is never read as a value: it is a
// *ResultCodeError, whose category (ErrNoFace, ErrFaceQuality, ...) answers
// errors.Is. Nothing in this package logs or puts into an error an image or
// a similarity.
package faceapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/media"
	"github.com/idvault/idvault/internal/regula/httpx"
)

// ErrNoVerdict means a liveness transaction has no status yet (the spec's
// null): the person has not finished, or the result is not stored yet.
var ErrNoVerdict = errors.New("faceapi: liveness transaction has no verdict")

// ErrInvalidTransactionID means the transaction id is not a UUID, as the
// spec requires.
var ErrInvalidTransactionID = errors.New("faceapi: transaction id is not a uuid")

// ImageSource values (common.yml ImageSource) Match sends.
const (
	SourceDocumentPrinted = 1
	SourceLive            = 3
)

// LivenessType values (liveness.yml LivenessType).
const (
	LivenessActive  = 0
	LivenessPassive = 1
)

// LivenessResult is a liveness transaction's verdict.
type LivenessResult struct {
	// Passed is true when the service confirmed a live person (status 0).
	Passed bool
	// Status is TransactionInfo.status: 0 confirmed, 1 not confirmed.
	Status int
	// Type is LivenessActive or LivenessPassive.
	Type int
	// TransactionID and Tag identify the transaction and its session.
	TransactionID string
	Tag           string
	// PortraitURL is the storage link of the selfie the transaction took;
	// "" when the service gave none.
	PortraitURL string
}

// Client calls one Face API service. It is safe for concurrent use.
type Client struct {
	http *httpx.Client
}

// New returns a Client for the service at cfg.URL. opts.Service defaults to
// "faceapi".
func New(cfg httpx.Config, opts httpx.Options) (*Client, error) {
	if opts.Service == "" {
		opts.Service = "faceapi"
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

// checkImage rejects an image that is not a JPEG or PNG before it is sent.
func checkImage(op string, i int, img []byte) error {
	if ct, ok := media.Sniff(img); !ok || (ct != media.JPEG && ct != media.PNG) {
		return fmt.Errorf("faceapi: %s: image %d: %w: not a JPEG or PNG", op, i, ErrInvalidImage)
	}
	return nil
}

// malformed wraps httpx.ErrMalformed with what is wrong, never a value.
func malformed(op, format string, args ...any) error {
	return fmt.Errorf("faceapi: %s: %w: "+format, append([]any{op, httpx.ErrMalformed}, args...)...)
}

// matchRequest is match.yml MatchRequest, the properties sent.
type matchRequest struct {
	Images []matchImage `json:"images"`
}

// matchImage is match.yml MatchImage; Data is written as standard base64.
type matchImage struct {
	Index int    `json:"index"`
	Type  int    `json:"type"`
	Data  []byte `json:"data"`
}

// matchResponse is match.yml MatchResponse, the properties read.
type matchResponse struct {
	Code       *ResultCode `json:"code"`
	Detections []struct {
		ImageIndex *int        `json:"imageIndex"`
		Status     *ResultCode `json:"status"`
		Faces      *[]struct{} `json:"faces"`
	} `json:"detections"`
	Results []struct {
		FirstIndex  *int     `json:"firstIndex"`
		SecondIndex *int     `json:"secondIndex"`
		Similarity  *float64 `json:"similarity"`
	} `json:"results"`
}

// Match compares the face in a, a document portrait (ImageSource
// DOCUMENT_PRINTED), with the face in b, a live photo (LIVE), and returns
// their similarity. Both MUST be JPEG or PNG.
//
// The similarity is MatchImageResult.similarity as the service sends it:
// 1 for identical faces, 0 for unrelated ones. (The spec's description calls
// it a percentage; the service answers in [0, 1], and Match rejects a value
// outside that range as httpx.ErrMalformed rather than guess a scale.)
// Every failure to compare is an error, never a zero similarity: a
// *ResultCodeError (ErrNoFace, ErrFaceQuality, ...) for a non-zero code or
// detection status, ErrNoFace when a detection lists no face, the httpx
// errors, or httpx.ErrMalformed.
func (c *Client) Match(ctx context.Context, a, b []byte) (float64, error) {
	for i, img := range [][]byte{a, b} {
		if err := checkImage("match", i, img); err != nil {
			return 0, err
		}
	}
	req := matchRequest{Images: []matchImage{
		{Index: 0, Type: SourceDocumentPrinted, Data: a},
		{Index: 1, Type: SourceLive, Data: b},
	}}
	var resp matchResponse
	if err := c.http.Do(ctx, http.MethodPost, "/api/match", nil, req, &resp); err != nil {
		return 0, err
	}
	return resp.similarity()
}

// similarity reads the similarity of images 0 and 1 from the answer.
func (resp *matchResponse) similarity() (float64, error) {
	if resp.Code == nil {
		return 0, malformed("match", "code is missing")
	}
	if err := codeError("match", *resp.Code, -1); err != nil {
		return 0, err
	}
	for i, d := range resp.Detections {
		if d.ImageIndex == nil || d.Status == nil {
			return 0, malformed("match", "detections[%d]: imageIndex or status is missing", i)
		}
		if err := codeError("match", *d.Status, *d.ImageIndex); err != nil {
			return 0, err
		}
		if d.Faces == nil || len(*d.Faces) == 0 {
			return 0, fmt.Errorf("faceapi: match: image %d: %w", *d.ImageIndex, ErrNoFace)
		}
	}
	for i, r := range resp.Results {
		if r.FirstIndex == nil || r.SecondIndex == nil {
			return 0, malformed("match", "results[%d]: firstIndex or secondIndex is missing", i)
		}
		if !(*r.FirstIndex == 0 && *r.SecondIndex == 1) && !(*r.FirstIndex == 1 && *r.SecondIndex == 0) {
			continue
		}
		if r.Similarity == nil {
			return 0, malformed("match", "results[%d].similarity is missing", i)
		}
		s := *r.Similarity
		if math.IsNaN(s) || s < 0 || s > 1 {
			return 0, malformed("match", "results[%d].similarity is outside [0, 1]", i)
		}
		return s, nil
	}
	return 0, malformed("match", "no result compares image 0 with image 1")
}

// detectRequest is detect.yml DetectRequest, the properties sent.
type detectRequest struct {
	Image        []byte             `json:"image"`
	ProcessParam detectProcessParam `json:"processParam"`
}

// detectProcessParam is common.yml ProcessParam, the properties sent.
type detectProcessParam struct {
	OnlyCentralFace bool `json:"onlyCentralFace"`
}

// detectResponse is detect.yml DetectResponse, the properties read.
type detectResponse struct {
	Code    *ResultCode `json:"code"`
	Results *struct {
		Detections *[]struct{} `json:"detections"`
	} `json:"results"`
}

// Detect returns how many faces img (JPEG or PNG) shows, at least 1. No face
// is ErrNoFace, never zero; other failures are a *ResultCodeError, the httpx
// errors or httpx.ErrMalformed.
func (c *Client) Detect(ctx context.Context, img []byte) (int, error) {
	if err := checkImage("detect", 0, img); err != nil {
		return 0, err
	}
	req := detectRequest{Image: img, ProcessParam: detectProcessParam{OnlyCentralFace: false}}
	var resp detectResponse
	if err := c.http.Do(ctx, http.MethodPost, "/api/detect", nil, req, &resp); err != nil {
		return 0, err
	}
	return resp.faces()
}

// faces reads the number of faces from the answer.
func (resp *detectResponse) faces() (int, error) {
	if resp.Code == nil {
		return 0, malformed("detect", "code is missing")
	}
	if err := codeError("detect", *resp.Code, -1); err != nil {
		return 0, err
	}
	if resp.Results == nil || resp.Results.Detections == nil {
		return 0, malformed("detect", "results.detections is missing")
	}
	n := len(*resp.Results.Detections)
	if n == 0 {
		return 0, fmt.Errorf("faceapi: detect: %w", ErrNoFace)
	}
	return n, nil
}

// transactionInfo is liveness.yml TransactionInfo, the properties read.
type transactionInfo struct {
	Code          *ResultCode `json:"code"`
	Status        *int        `json:"status"`
	Tag           string      `json:"tag"`
	TransactionID string      `json:"transactionId"`
	Portrait      string      `json:"portrait"`
	Type          *int        `json:"type"`
}

// Liveness returns the verdict of the liveness transaction transactionID (a
// UUID). A non-zero code is a *ResultCodeError (ErrLivenessFailed for a
// failed, timed-out or aborted transaction; ErrNoFace; ...); a null status
// is ErrNoVerdict; an answer about another transaction, or a status or type
// outside the spec, is httpx.ErrMalformed.
func (c *Client) Liveness(ctx context.Context, transactionID string) (LivenessResult, error) {
	id, err := uuid.Parse(transactionID)
	if err != nil {
		return LivenessResult{}, ErrInvalidTransactionID
	}
	var info transactionInfo
	q := url.Values{"transactionId": {id.String()}}
	if err := c.http.Do(ctx, http.MethodGet, "/api/v2/liveness", q, nil, &info); err != nil {
		return LivenessResult{}, err
	}
	return info.result(id)
}

// result reads the verdict on transaction id from the answer.
func (info *transactionInfo) result(id uuid.UUID) (LivenessResult, error) {
	if info.Code != nil {
		if err := codeError("liveness", *info.Code, -1); err != nil {
			return LivenessResult{}, err
		}
	}
	if got, err := uuid.Parse(info.TransactionID); err != nil || got != id {
		return LivenessResult{}, malformed("liveness", "transactionId does not match the request")
	}
	if info.Status == nil {
		return LivenessResult{}, ErrNoVerdict
	}
	if *info.Status != 0 && *info.Status != 1 {
		return LivenessResult{}, malformed("liveness", "status %d is neither 0 nor 1", *info.Status)
	}
	r := LivenessResult{
		Passed:        *info.Status == 0,
		Status:        *info.Status,
		TransactionID: info.TransactionID,
		Tag:           info.Tag,
		PortraitURL:   info.Portrait,
	}
	if info.Type != nil {
		if *info.Type != LivenessActive && *info.Type != LivenessPassive {
			return LivenessResult{}, malformed("liveness", "type %d is not a LivenessType", *info.Type)
		}
		r.Type = *info.Type
	}
	return r, nil
}
