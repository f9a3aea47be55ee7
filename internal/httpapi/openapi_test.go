package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/authz"
)

// httpMethods are the keys of an OpenAPI path item that name operations.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

const problemRef = "#/components/schemas/Problem"

// loadDoc parses the embedded OpenAPI document into generic JSON values.
func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(openapiDoc))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("json.Decode(openapi.json) = %v, want nil", err)
	}
	return doc
}

// docOperation is one operation of the document.
type docOperation struct {
	path, method string
	item, op     map[string]any
}

func operations(t *testing.T, doc map[string]any) []docOperation {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatalf("paths = %T, want an object", doc["paths"])
	}
	var ops []docOperation
	for p, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("paths[%q] = %T, want an object", p, v)
		}
		for _, m := range httpMethods {
			if v, ok := item[m]; ok {
				op, ok := v.(map[string]any)
				if !ok {
					t.Fatalf("paths[%q][%q] = %T, want an object", p, m, v)
				}
				ops = append(ops, docOperation{path: p, method: m, item: item, op: op})
			}
		}
	}
	slices.SortFunc(ops, func(a, b docOperation) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) })
	return ops
}

// resolve follows a local JSON pointer ("#/a/b") inside doc.
func resolve(doc map[string]any, ref string) (any, error) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, errors.New("not a local reference")
	}
	var cur any = doc
	if ptr == "" {
		return cur, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, errors.New("pointer does not start with /")
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q indexes a non-object", tok)
		}
		if cur, ok = obj[tok]; !ok {
			return nil, fmt.Errorf("no member %q", tok)
		}
	}
	return cur, nil
}

// deref returns v, or what it refers to when it is a reference object.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	obj, _ := v.(map[string]any)
	if ref, ok := obj["$ref"].(string); ok {
		target, err := resolve(doc, ref)
		if err != nil {
			t.Fatalf("resolve(%q) = %v, want nil", ref, err)
		}
		obj, _ = target.(map[string]any)
	}
	return obj
}

// refs calls fn with the JSON pointer and value of every $ref in v.
func refs(v any, at string, fn func(at, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "$ref" {
				ref, _ := e.(string)
				fn(at, ref)
				continue
			}
			refs(e, at+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), fn)
		}
	case []any:
		for i, e := range v {
			refs(e, fmt.Sprintf("%s/%d", at, i), fn)
		}
	}
}

func TestOpenAPICoversRoutes(t *testing.T) {
	a := New(Deps{Log: slog.New(slog.DiscardHandler)})
	doc := loadDoc(t)
	paths, _ := doc["paths"].(map[string]any)
	routes := map[string]route{}
	for _, rt := range a.routes {
		key := strings.ToLower(rt.method) + " " + rt.pattern
		if _, dup := routes[key]; dup {
			t.Errorf("route %s %s registered twice", rt.method, rt.pattern)
		}
		routes[key] = rt
		t.Run(rt.method+" "+rt.pattern, func(t *testing.T) {
			if n := btoi(rt.public) + btoi(rt.self) + btoi(rt.perm != ""); n != 1 {
				t.Errorf("route public = %v, self = %v, perm %q; want exactly one of public, self and a permission", rt.public, rt.self, rt.perm)
			}
			if !rt.public && !rt.self && !authz.Known(rt.perm) {
				t.Errorf("authz.Known(%q) = false, want true", rt.perm)
			}
			item, _ := paths[rt.pattern].(map[string]any)
			op, ok := item[strings.ToLower(rt.method)].(map[string]any)
			if !ok {
				t.Fatalf("paths[%q][%q] missing from openapi.json", rt.pattern, strings.ToLower(rt.method))
			}
			want := string(rt.perm)
			switch {
			case rt.public:
				want = "public"
			case rt.self:
				want = "self"
			}
			if got := op["x-permission"]; got != want {
				t.Errorf("x-permission = %v, want %q", got, want)
			}
			sec, hasSec := op["security"].([]any)
			switch {
			case rt.public && (!hasSec || len(sec) != 0):
				t.Errorf("security = %v, want [] on a public route", op["security"])
			case !rt.public && hasSec:
				t.Errorf("security = %v, want the document's default on an authenticated route", sec)
			}
			responses, _ := op["responses"].(map[string]any)
			if !rt.public {
				for _, code := range []string{"401", "403"} {
					if _, ok := responses[code]; !ok {
						t.Errorf("responses[%s] missing on an authenticated route", code)
					}
				}
			}
		})
	}
	for _, o := range operations(t, doc) {
		if _, ok := routes[o.method+" "+o.path]; !ok {
			t.Errorf("openapi.json documents %s %s, want a route for it", strings.ToUpper(o.method), o.path)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func TestOpenAPIDocument(t *testing.T) {
	doc := loadDoc(t)
	if got := doc["openapi"]; got != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", got)
	}
	refs(doc, "#", func(at, ref string) {
		if _, err := resolve(doc, ref); err != nil {
			t.Errorf("resolve(%q) at %s = %v, want nil", ref, at, err)
		}
	})
	components, _ := doc["components"].(map[string]any)
	schemes, _ := components["securitySchemes"].(map[string]any)
	for _, name := range []string{"ApiKey", "Bearer"} {
		if _, ok := schemes[name]; !ok {
			t.Errorf("components.securitySchemes[%q] missing", name)
		}
	}
	ids := map[string]string{}
	for _, o := range operations(t, doc) {
		name := strings.ToUpper(o.method) + " " + o.path
		t.Run(name, func(t *testing.T) {
			id, _ := o.op["operationId"].(string)
			if id == "" {
				t.Errorf("operationId missing")
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %q also used by %s", id, prev)
			}
			ids[id] = name
			for _, key := range []string{"summary", "description"} {
				if s, _ := o.op[key].(string); s == "" {
					t.Errorf("%s missing", key)
				}
			}
			testPathParams(t, doc, o)
			testResponses(t, doc, o.op)
		})
	}
}

// testPathParams checks that the path template's parameters and the
// declared path parameters are the same set.
func testPathParams(t *testing.T, doc map[string]any, o docOperation) {
	t.Helper()
	var want []string
	for _, m := range pathParam.FindAllStringSubmatch(o.path, -1) {
		want = append(want, m[1])
	}
	var got []string
	for _, list := range []any{o.item["parameters"], o.op["parameters"]} {
		params, _ := list.([]any)
		for _, p := range params {
			param := deref(t, doc, p)
			if param["in"] == "path" {
				if param["required"] != true {
					t.Errorf("path parameter %v required = %v, want true", param["name"], param["required"])
				}
				name, _ := param["name"].(string)
				got = append(got, name)
			}
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("path parameters = %v, want %v", got, want)
	}
}

// testResponses checks that the operation has a success response and at
// least one error response, that every error response is problem+json of
// the Problem schema, and that every response declares X-Request-Id.
func testResponses(t *testing.T, doc map[string]any, op map[string]any) {
	t.Helper()
	responses, _ := op["responses"].(map[string]any)
	var success, failures int
	for code, v := range responses {
		resp := deref(t, doc, v)
		if resp == nil {
			t.Errorf("responses[%s] is not an object", code)
			continue
		}
		headers, _ := resp["headers"].(map[string]any)
		if _, ok := headers["X-Request-Id"]; !ok {
			t.Errorf("responses[%s] does not declare X-Request-Id", code)
		}
		switch code[0] {
		case '2', '3': // a redirect is the success of a browser route
			success++
		case '4', '5':
			failures++
			content, _ := resp["content"].(map[string]any)
			media, _ := content["application/problem+json"].(map[string]any)
			schema, _ := media["schema"].(map[string]any)
			if got := schema["$ref"]; got != problemRef || len(content) != 1 {
				t.Errorf("responses[%s] content = %v, want only application/problem+json of %s", code, content, problemRef)
			}
		default:
			t.Errorf("responses[%s]: want a 2xx, 3xx, 4xx or 5xx status", code)
		}
	}
	if success == 0 {
		t.Errorf("no 2xx or 3xx response")
	}
	if failures == 0 {
		t.Errorf("no 4xx or 5xx response referring to %s", problemRef)
	}
}

// jsonFields returns the JSON names of t's fields and those without
// omitempty, which are always present in its encoding.
func jsonFields(t reflect.Type) (names, always []string) {
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			always = append(always, name)
		}
	}
	slices.Sort(names)
	slices.Sort(always)
	return names, always
}

func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadDoc(t)
	components, _ := doc["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	tests := []struct {
		schema string
		typ    reflect.Type
		// request schemas are decoded, so every field is optional and
		// unknown ones are rejected.
		request bool
	}{
		{"Problem", reflect.TypeFor[problemBody](), false},
		{"FieldError", reflect.TypeFor[FieldError](), false},
		{"Session", reflect.TypeFor[sessionView](), false},
		{"File", reflect.TypeFor[fileView](), false},
		{"CreateSessionRequest", reflect.TypeFor[createSessionRequest](), true},
	}
	for _, tc := range tests {
		t.Run(tc.schema, func(t *testing.T) {
			schema, ok := schemas[tc.schema].(map[string]any)
			if !ok {
				t.Fatalf("components.schemas[%q] missing", tc.schema)
			}
			names, always := jsonFields(tc.typ)
			props, _ := schema["properties"].(map[string]any)
			var got []string
			for name := range props {
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, names) {
				t.Errorf("properties = %v, want the JSON fields of %v: %v", got, tc.typ, names)
			}
			var required []string
			list, _ := schema["required"].([]any)
			for _, v := range list {
				name, _ := v.(string)
				required = append(required, name)
			}
			slices.Sort(required)
			if tc.request {
				always = nil
				if got := schema["additionalProperties"]; got != false {
					t.Errorf("additionalProperties = %v, want false", got)
				}
			}
			if !slices.Equal(required, always) {
				t.Errorf("required = %v, want %v", required, always)
			}
		})
	}
}

func TestOpenAPIServed(t *testing.T) {
	a := New(Deps{Log: slog.New(slog.DiscardHandler)})
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json status = %d, want %d", w.Code, http.StatusOK)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json"; got != want {
		t.Errorf("GET /api/v1/openapi.json Content-Type = %q, want %q", got, want)
	}
	if !bytes.Equal(w.Body.Bytes(), openapiDoc) {
		t.Errorf("GET /api/v1/openapi.json body differs from the embedded openapi.json")
	}
}
