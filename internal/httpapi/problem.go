package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// problemBase prefixes the problem type of every error; the slug after it
// is stable and documented in docs/api.md.
const problemBase = "urn:idvault:problem:"

// Problem is an RFC 9457 problem detail. Handlers return it as their error to
// choose the status and public message; any other error becomes a 500 whose
// detail stays in the log.
type Problem struct {
	Status int
	// Slug names the problem type (problemBase + Slug).
	Slug   string
	Title  string
	Detail string
	// Errors lists per-field problems of a validation failure.
	Errors []FieldError
	header http.Header
}

// FieldError names one invalid input.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("%d %s: %s", p.Status, p.Slug, p.Detail)
}

func problem(status int, slug, title, detail string) *Problem {
	return &Problem{Status: status, Slug: slug, Title: title, Detail: detail}
}

func badRequest(detail string, fields ...FieldError) *Problem {
	p := problem(http.StatusBadRequest, "invalid-request", "Invalid request", detail)
	p.Errors = fields
	return p
}

func notFound() *Problem {
	return problem(http.StatusNotFound, "not-found", "Not found", "The resource does not exist.")
}

func unauthenticated() *Problem {
	p := problem(http.StatusUnauthorized, "unauthenticated", "Authentication required",
		"A valid API key (Authorization: ApiKey <key>) or bearer token is required.")
	p.header = http.Header{"Www-Authenticate": {`ApiKey realm="idvault", Bearer realm="idvault"`}}
	return p
}

type problemBody struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	ErrorID   string       `json:"errorId"`
	RequestID string       `json:"requestId,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem, errorID string) {
	for k, v := range p.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Content-Length")
	w.Header().Del("Content-Disposition")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(problemBody{
		Type:      problemBase + p.Slug,
		Title:     p.Title,
		Status:    p.Status,
		Detail:    p.Detail,
		Instance:  r.URL.Path,
		ErrorID:   errorID,
		RequestID: requestID(r.Context()),
		Errors:    p.Errors,
	})
}
