package httpapi

import (
	_ "embed"
	"encoding/json"
	"io"
	"net/http"
)

// openapiDoc is the OpenAPI 3.1 description of the API, kept in the repo
// beside the code; a test fails if a route is missing from it.
//
//go:embed openapi.json
var openapiDoc []byte

func (a *API) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(openapiDoc)
	return err
}

func jsonEncode(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
