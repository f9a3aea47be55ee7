package webhook_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/webhook"
)

// harness runs the documented VerifyIdvault on its arguments: secret,
// header, body, receiver's unix time.
const harness = `package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	now, _ := strconv.ParseInt(os.Args[4], 10, 64)
	if err := VerifyIdvault(os.Args[1], os.Args[2], []byte(os.Args[3]), time.Unix(now, 0)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ok")
}
`

// TestDocumentedVerifier compiles the Go verification sample of
// docs/webhooks.md on its own (standard library only, as a receiver
// would) and checks that it accepts what idvault signs and refuses
// forgeries and replays.
func TestDocumentedVerifier(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a program")
	}
	doc, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```go\n")
	sample, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(sample, "func VerifyIdvault(") {
		t.Fatal("docs/webhooks.md has no Go block with VerifyIdvault first")
	}
	sample = strings.Replace(sample, "package receiver", "package main", 1)
	dir := t.TempDir()
	for name, src := range map[string]string{
		"go.mod":     "module receiver\n\ngo 1.22\n",
		"verify.go":  sample,
		"harness.go": harness,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "verify")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("documented sample does not build: %v\n%s", err, out)
	}

	secret := "whsec_documented"
	body := `{"id":"evt_1","type":"session.created"}`
	sent := time.Unix(1767225600, 0)
	rotation := webhook.SignatureHeader(sent, []byte(body), []byte("whsec_new"), []byte(secret))
	tests := []struct {
		name, secret, header, body string
		now                        time.Time
		want                       string
	}{
		{"valid", secret, webhook.SignatureHeader(sent, []byte(body), []byte(secret)), body, sent.Add(time.Minute), "ok"},
		{"valid during rotation", secret, rotation, body, sent, "ok"},
		{"wrong secret", "whsec_other", webhook.SignatureHeader(sent, []byte(body), []byte(secret)), body, sent, "signature mismatch"},
		{"tampered body", secret, webhook.SignatureHeader(sent, []byte(body), []byte(secret)), body + " ", sent, "signature mismatch"},
		{"replayed", secret, webhook.SignatureHeader(sent, []byte(body), []byte(secret)), body, sent.Add(10 * time.Minute), "signature timestamp outside tolerance"},
		{"no signature", secret, "t=1767225600", body, sent, "malformed signature header"},
	}
	for _, tt := range tests {
		out, err := exec.Command(bin, tt.secret, tt.header, tt.body, strconv.FormatInt(tt.now.Unix(), 10)).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != tt.want {
			t.Errorf("%s: documented verifier = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
