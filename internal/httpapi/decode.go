package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// decodeJSON reads a JSON request body of at most limit bytes into dst:
// the media type must be application/json, unknown fields and trailing data
// are rejected, and every failure is a 4xx Problem.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"The request body must be application/json.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge(limit)
		}
		return badRequest("The request body could not be read.")
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return badRequest("The request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest(jsonError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("The request body must hold exactly one JSON value.")
	}
	return nil
}

func tooLarge(limit int64) *Problem {
	return problem(http.StatusRequestEntityTooLarge, "too-large", "Request body too large",
		fmt.Sprintf("The request body exceeds the limit of %d bytes.", limit))
}

// fieldName matches field names safe to echo in an error: a caller's
// unknown field could be long or hold personal data.
var fieldName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// jsonError turns a decoding error into a public message that names the
// position or field but never echoes the input.
func jsonError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("Malformed JSON at byte %d.", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("Field %q must be of type %s.", typ.Field, typ.Type)
		}
		return fmt.Sprintf("The body must be a JSON %s.", typ.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "The request body is empty or truncated."
	default:
		msg := err.Error()
		if field, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			if name, err := strconv.Unquote(field); err == nil && fieldName.MatchString(name) {
				return fmt.Sprintf("Unknown field %q.", name)
			}
			return "The request body has an unknown field."
		}
		return "The request body is not valid JSON for this operation."
	}
}
