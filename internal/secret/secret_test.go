package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const plaintext = "hunter2-s3cr3t"

// hexVerb is not a constant, so vet lets the test print a struct with %x.
var hexVerb = "%x"

// holder puts a Value in exported and unexported fields, and behind a
// pointer, the places where encoders reach it by reflection.
type holder struct {
	Exported Value  `json:"exported" yaml:"exported"`
	Ptr      *Value `json:"ptr" yaml:"ptr"`
	hidden   Value
}

func newHolder() holder {
	v := New([]byte(plaintext))
	return holder{Exported: v, Ptr: &v, hidden: v}
}

func TestValueNeverPrints(t *testing.T) {
	v := New([]byte(plaintext))
	h := newHolder()
	tests := []struct {
		name string
		got  func() string
	}{
		{"fmt %v", func() string { return fmt.Sprintf("%v", v) }},
		{"fmt %+v", func() string { return fmt.Sprintf("%+v", v) }},
		{"fmt %#v", func() string { return fmt.Sprintf("%#v", v) }},
		{"fmt %s", func() string { return fmt.Sprintf("%s", v) }},
		{"fmt %q", func() string { return fmt.Sprintf("%q", v) }},
		{"fmt %x", func() string { return fmt.Sprintf("%x", v) }},
		{"fmt %v pointer", func() string { return fmt.Sprintf("%v", &v) }},
		{"fmt %v struct", func() string { return fmt.Sprintf("%v", h) }},
		{"fmt %+v struct", func() string { return fmt.Sprintf("%+v", h) }},
		{"fmt %#v struct", func() string { return fmt.Sprintf("%#v", h) }},
		{"fmt %x struct", func() string { return fmt.Sprintf(hexVerb, h) }},
		{"fmt %v slice", func() string { return fmt.Sprintf("%v", []Value{v}) }},
		{"fmt %v map", func() string { return fmt.Sprintf("%v", map[string]Value{"k": v}) }},
		{"String", v.String},
		{"GoString", v.GoString},
		{"error wrap", func() string { return fmt.Errorf("key %v: %w", v, fmt.Errorf("inner")).Error() }},
		{"json", func() string {
			b, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
		{"yaml", func() string {
			b, err := yaml.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
		{"text", func() string {
			b, err := v.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
		{"slog json", func() string {
			var buf bytes.Buffer
			l := slog.New(slog.NewJSONHandler(&buf, nil))
			l.Info("msg", "key", v, "holder", h, slog.Any("ptr", &v))
			return buf.String()
		}},
		{"slog text", func() string {
			var buf bytes.Buffer
			l := slog.New(slog.NewTextHandler(&buf, nil))
			l.Info("msg", "key", v, slog.Group("g", "inner", v))
			return buf.String()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.got()
			if strings.Contains(got, plaintext) {
				t.Fatalf("%s = %q, contains the secret", tt.name, got)
			}
			if strings.Contains(got, fmt.Sprintf("%x", plaintext)) {
				t.Fatalf("%s = %q, contains the secret in hex", tt.name, got)
			}
			if strings.Contains(got, fmt.Sprint([]byte(plaintext))) {
				t.Fatalf("%s = %q, contains the secret as bytes", tt.name, got)
			}
		})
	}
}

func TestValueRedactedOutput(t *testing.T) {
	v := New([]byte(plaintext))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d"} {
		if got := fmt.Sprintf(verb, v); got != "REDACTED" {
			t.Errorf("Sprintf(%q, v) = %q, want %q", verb, got, "REDACTED")
		}
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `"REDACTED"` {
		t.Errorf("json.Marshal(v) = %s, %v, want %q, nil", b, err, `"REDACTED"`)
	}
	y, err := yaml.Marshal(v)
	if err != nil || string(y) != "REDACTED\n" {
		t.Errorf("yaml.Marshal(v) = %q, %v, want %q, nil", y, err, "REDACTED\n")
	}
	if got := v.LogValue().String(); got != "REDACTED" {
		t.Errorf("LogValue() = %q, want %q", got, "REDACTED")
	}
}

func TestValueBytes(t *testing.T) {
	src := []byte(plaintext)
	v := New(src)
	src[0] = 'X'
	if got := string(v.Bytes()); got != plaintext {
		t.Fatalf("Bytes() after caller changed input = %q, want %q", got, plaintext)
	}
	b := v.Bytes()
	b[0] = 'Y'
	if got := string(v.Bytes()); got != plaintext {
		t.Fatalf("Bytes() after caller changed copy = %q, want %q", got, plaintext)
	}
}

func TestValueZeroAndEqual(t *testing.T) {
	a := New([]byte("abc"))
	tests := []struct {
		name  string
		x, y  Value
		equal bool
	}{
		{"same bytes", a, New([]byte("abc")), true},
		{"copy", a, a, true},
		{"different bytes", a, New([]byte("abd")), false},
		{"prefix", a, New([]byte("ab")), false},
		{"zero and zero", Value{}, Value{}, true},
		{"zero and empty", Value{}, New(nil), true},
		{"zero and value", Value{}, a, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x.Equal(tt.y); got != tt.equal {
				t.Errorf("Equal() = %v, want %v", got, tt.equal)
			}
			if got := tt.y.Equal(tt.x); got != tt.equal {
				t.Errorf("reverse Equal() = %v, want %v", got, tt.equal)
			}
		})
	}
	if !(Value{}).IsZero() || !New([]byte{}).IsZero() || a.IsZero() {
		t.Errorf("IsZero() wrong: zero %v, empty %v, abc %v", (Value{}).IsZero(), New([]byte{}).IsZero(), a.IsZero())
	}
	if got := (Value{}).Bytes(); got != nil {
		t.Errorf("Value{}.Bytes() = %v, want nil", got)
	}
}

func BenchmarkEqual(b *testing.B) {
	for _, n := range []int{32, 1024} {
		x := New(bytes.Repeat([]byte{1}, n))
		y := New(bytes.Repeat([]byte{1}, n))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				x.Equal(y)
			}
		})
	}
}
