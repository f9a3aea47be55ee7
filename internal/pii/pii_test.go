package pii_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/pii"
)

const marker = "Jane-Marker-Doe-7731"

type holder struct {
	Name pii.String `json:"name"`
	Meta pii.JSON   `json:"meta"`
}

// TestRedactedInEveryFormat prints personal data every way a log line or an
// error message could, and checks that the marker never appears.
func TestRedactedInEveryFormat(t *testing.T) {
	s := pii.String(marker)
	j := pii.JSON(`{"name":"` + marker + `"}`)
	h := holder{Name: s, Meta: j}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3s", "%T %v"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, j), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	out = append(out, fmt.Sprint(s, j, h), fmt.Sprintln(s, j), s.String(), j.String(),
		fmt.Errorf("lookup %v: %w", s, errors.New("x")).Error())
	for _, o := range out {
		if strings.Contains(o, marker) || strings.Contains(o, fmt.Sprintf("%x", marker)) || strings.Contains(strings.ToLower(o), strings.ToLower(fmt.Sprintf("%x", marker))) {
			t.Errorf("formatted output %q holds the personal data", o)
		}
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("msg", "name", s, "meta", j, "grouped", slog.GroupValue(slog.Any("n", s)))
		l.Info(fmt.Sprint(s), slog.Any("any", s), slog.String("str", s.String()))
	}
	if bytes.Contains(buf.Bytes(), []byte(marker)) {
		t.Errorf("slog output holds the personal data:\n%s", buf.Bytes())
	}
	if !bytes.Contains(buf.Bytes(), []byte(pii.Redacted)) {
		t.Errorf("slog output does not say the value was redacted:\n%s", buf.Bytes())
	}
}

// TestJSONKeepsTheValue checks that records still store the value.
func TestJSONKeepsTheValue(t *testing.T) {
	h := holder{Name: pii.String(marker), Meta: pii.JSON(`{"k":1}`)}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"` + marker + `","meta":{"k":1}}`; string(b) != want {
		t.Fatalf("json.Marshal = %s, want %s", b, want)
	}
	var back holder
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Name.Value() != marker || string(back.Meta.Value()) != `{"k":1}` {
		t.Errorf("round trip = %q, %s", back.Name.Value(), back.Meta.Value())
	}
	if b, err := json.Marshal(holder{}); err != nil || string(b) != `{"name":"","meta":null}` {
		t.Errorf("empty = %s, %v", b, err)
	}
}
