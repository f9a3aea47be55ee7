package faceapi

import (
	"errors"
	"fmt"
)

// ResultCode is a FaceSDKResultCode (common.yml of the Face API spec).
type ResultCode int

// resultCodeNames is FaceSDKResultCode: enum and x-enum-varnames, in order.
var resultCodeNames = map[ResultCode]string{
	0: "FACER_OK", 1: "FR_IMAGE_EMPTY", 2: "FR_FACE_NOT_DETECTED",
	3: "FR_LANDMARKS_NOT_DETECTED", 4: "FR_FACE_ALIGHNER_FAILED",
	5: "FR_DESCRIPTOR_EXTRACTOR_ERROR", 6: "FR_IMAGE_DECODE_ERROR",
	7: "FR_INTERNAL_ERROR", 199: "FACER_CONFIG_ERROR", 200: "FACER_NO_LICENSE",
	201: "FACER_IS_NOT_INITIALIZED", 202: "FACER_COMMAND_IS_NOT_SUPPORTED",
	203: "FACER_COMMAND_PARAMS_READ_ERROR",
	224: "FACER_LESS_THAN_TWO_IMAGES_IN_REQUEST",
	227: "FACER_VIDEO_DECODE_ERROR", 228: "FACER_NOT_ENOUGH_FRAMES",
	229: "FACER_OUTPUT_IS_NOT_DEFINED", 230: "FACER_CLOSED_EYES_DETECTED",
	231: "FACER_LOW_QUALITY", 232: "FACER_HIGH_ASYMMETRY",
	233: "FACER_FACE_OVER_EMOTIONAL", 234: "FACER_SUNGLASSES_DETECTED",
	235: "FACER_SMALL_AGE", 236: "FACER_HEADDRESS_DETECTED",
	237: "FACER_FACES_NOT_MATCHED", 238: "FACER_IMAGES_COUNT_LIMIT_EXCEEDED",
	239: "FACER_MEDICINE_MASK_DETECTED", 240: "FACER_OCCLUSION_DETECTED",
	242: "FACER_FOREHEAD_GLASSES_DETECTED", 243: "FACER_MOUTH_OPENED",
	244: "FACER_ART_MASK_DETECTED", 245: "FACER_ELECTRONIC_DEVICE_DETECTED",
	246: "FACER_TRACK_BREAK", 247: "FACER_WRONG_GEO", 248: "FACER_WRONG_OF",
	249: "FACER_WRONG_VIEW", 250: "FACER_TIMEOUT_LIVENESS_TRANSACTION",
	251: "FACER_FAILED_LIVENESS_TRANSACTION",
	252: "FACER_ABORTED_LIVENESS_TRANSACTION", 253: "FACER_GENERAL_ERROR",
	254: "FACER_PASSIVE_LIVENESS_FAIL",
}

// String returns the spec's name of the code, or "UNKNOWN".
func (c ResultCode) String() string {
	if n, ok := resultCodeNames[c]; ok {
		return n
	}
	return "UNKNOWN"
}

// Categories of ResultCodeError. Check them with errors.Is.
var (
	// ErrNoFace: no face was found (FR_FACE_NOT_DETECTED), or an answer
	// lists no face for an image.
	ErrNoFace = errors.New("faceapi: no face detected")
	// ErrInvalidImage: the image is empty or does not decode
	// (FR_IMAGE_EMPTY, FR_IMAGE_DECODE_ERROR), or, before anything is sent,
	// is not a JPEG or PNG.
	ErrInvalidImage = errors.New("faceapi: invalid image")
	// ErrFaceQuality: a face was found but cannot be used: landmarks,
	// alignment or descriptor failed, or a quality or attribute check failed
	// (closed eyes, low quality, sunglasses, mask, occlusion, ...).
	ErrFaceQuality = errors.New("faceapi: face unusable")
	// ErrNotMatched: the service reported FACER_FACES_NOT_MATCHED.
	ErrNotMatched = errors.New("faceapi: faces not matched")
	// ErrLivenessFailed: the liveness transaction did not confirm a live
	// person (failed, passive check failed, timed out, aborted, track break,
	// wrong geometry/optical flow/view, video unusable).
	ErrLivenessFailed = errors.New("faceapi: liveness not confirmed")
	// ErrService: the service could not do the work (internal, config,
	// license or command errors, and codes this client does not know).
	ErrService = errors.New("faceapi: service error")
)

// categories maps each non-OK code to its category; codes not listed are
// ErrService.
var categories = map[ResultCode]error{
	1: ErrInvalidImage, 6: ErrInvalidImage,
	2: ErrNoFace,
	3: ErrFaceQuality, 4: ErrFaceQuality, 5: ErrFaceQuality,
	230: ErrFaceQuality, 231: ErrFaceQuality, 232: ErrFaceQuality,
	233: ErrFaceQuality, 234: ErrFaceQuality, 235: ErrFaceQuality,
	236: ErrFaceQuality, 239: ErrFaceQuality, 240: ErrFaceQuality,
	242: ErrFaceQuality, 243: ErrFaceQuality, 244: ErrFaceQuality,
	245: ErrFaceQuality,
	237: ErrNotMatched,
	227: ErrLivenessFailed, 228: ErrLivenessFailed, 246: ErrLivenessFailed,
	247: ErrLivenessFailed, 248: ErrLivenessFailed, 249: ErrLivenessFailed,
	250: ErrLivenessFailed, 251: ErrLivenessFailed, 252: ErrLivenessFailed,
	254: ErrLivenessFailed,
}

// ResultCodeError reports a non-OK FaceSDKResultCode in an answer: the
// top-level code, or a match detection's status for one image.
type ResultCodeError struct {
	// Op is the operation: "match", "detect" or "liveness".
	Op   string
	Code ResultCode
	// Image is the image index a detection status refers to, or -1.
	Image int
}

// Error names the operation and the code.
func (e *ResultCodeError) Error() string {
	if e.Image >= 0 {
		return fmt.Sprintf("faceapi: %s: image %d: result code %d (%s)", e.Op, e.Image, int(e.Code), e.Code)
	}
	return fmt.Sprintf("faceapi: %s: result code %d (%s)", e.Op, int(e.Code), e.Code)
}

// Is reports whether target is the code's category.
func (e *ResultCodeError) Is(target error) bool {
	cat, ok := categories[e.Code]
	if !ok {
		cat = ErrService
	}
	return target == cat
}

// codeError returns nil for FACER_OK, else a *ResultCodeError.
func codeError(op string, code ResultCode, image int) error {
	if code == 0 {
		return nil
	}
	return &ResultCodeError{Op: op, Code: code, Image: image}
}
