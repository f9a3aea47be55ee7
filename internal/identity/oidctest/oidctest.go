// Package oidctest starts a real OpenID provider for single sign-on tests:
// oidc-provider (Node.js, OpenID-certified), pinned in provider/ and set up
// there by `npm ci` (scripts/test runs it). It also drives the provider's
// test-only sign-in interaction the way a browser would, with an
// http.Client that keeps cookies.
//
// The provider serves plain HTTP on 127.0.0.1, so its issuer is
// http://127.0.0.1:<port> (relying parties allow http only on loopback).
// Its ID tokens are signed RS256 by a key generated at start; accounts and
// their claims are given at start and may be replaced (SetAccount). An
// account whose claims hold "_tamper" gets deliberately defective ID tokens
// from the real token endpoint (see provider/provider.mjs): "aud", "iss",
// "exp", "sig" or "none".
package oidctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Client is a client registered at the provider (authorization code flow,
// PKCE required, client_secret_basic).
type Client struct {
	ID           string   `json:"client_id"`
	Secret       string   `json:"client_secret"`
	RedirectURIs []string `json:"redirect_uris"`
}

// Config is what the provider starts with. Accounts maps an account id
// (the ID token's sub) to its claims: "email", "email_verified", "groups"
// and "roles" are released (scopes email and groups), "_tamper" is read by
// the provider itself.
type Config struct {
	Clients  []Client                  `json:"clients"`
	Accounts map[string]map[string]any `json:"accounts"`
}

// Provider is a running provider. Its methods are safe for concurrent use.
type Provider struct {
	// Issuer is the provider's issuer URL.
	Issuer string
	client *http.Client
}

// Dir is the directory of the provider script and its package.json.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "provider")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTimeout bounds the provider's start: node loads oidc-provider and
// generates two RSA keys, which on a CI machine busy with the race detector
// has taken over a minute.
const startTimeout = 3 * time.Minute

// Start starts a provider with cfg and stops it when the test ends. Without
// node, or without provider/node_modules, the test is skipped, or fails
// when IDVAULT_TEST_REQUIRE_INTEGRATION=1.
func Start(t testing.TB, cfg Config) *Provider {
	t.Helper()
	dir := Dir()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json"))
	}
	if err != nil {
		msg := fmt.Sprintf("oidctest: the OpenID provider needs node and `npm ci` in %s (scripts/test runs it): %v", dir, err)
		if os.Getenv("IDVAULT_TEST_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	conf, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("oidctest: config: %v", err)
	}
	cmd := exec.Command(node, "provider.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "OIDC_TEST_CONFIG="+string(conf))
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("oidctest: start node: %v", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	type ready struct {
		Issuer string `json:"issuer"`
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	var r ready
	select {
	case l := <-line:
		if err := json.Unmarshal([]byte(l), &r); err != nil || !strings.HasPrefix(r.Issuer, "http://127.0.0.1:") {
			stop()
			t.Fatalf("oidctest: provider did not start (%q, %v); stderr:\n%s", l, err, stderr)
		}
	case <-time.After(startTimeout):
		stop()
		<-line
		t.Fatalf("oidctest: provider did not start within %s; stderr:\n%s", startTimeout, stderr)
	}
	tr := &http.Transport{}
	p := &Provider{Issuer: r.Issuer, client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		stop()
		if t.Failed() {
			t.Logf("oidctest: provider stderr:\n%s", stderr)
		}
	})
	return p
}

// SetAccount replaces the claims of account id (creating it).
func (p *Provider) SetAccount(ctx context.Context, id string, claims map[string]any) error {
	body, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.Issuer+"/test/accounts/"+url.PathEscape(id), bytes.NewReader(body))
	if err != nil {
		return err
	}
	res, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("set account: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		return fmt.Errorf("set account: %s", res.Status)
	}
	return nil
}

// Login is how Authorize answers the provider's interaction.
type Login struct {
	// Account is the account to sign in.
	Account string
	// AMR is the authentication methods the provider states (default
	// ["pwd"]).
	AMR []string
	// Deny refuses at the login prompt, so the provider redirects back with
	// error=access_denied.
	Deny bool
}

// Authorize plays the browser at the provider: from authURL (the relying
// party's redirect) it signs in as login says and grants consent, and it
// returns the URL the provider finally redirects to, outside the provider
// (the relying party's callback), without requesting it. client must keep
// cookies (a cookie jar) and must not follow redirects.
func (p *Provider) Authorize(ctx context.Context, client *http.Client, authURL string, login Login) (*url.URL, error) {
	next, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	method, form := http.MethodGet, url.Values(nil)
	for range 12 {
		if !strings.HasPrefix(next.String(), p.Issuer+"/") {
			return next, nil
		}
		loc, err := p.step(ctx, client, method, next.String(), form)
		if err != nil {
			return nil, err
		}
		method, form = http.MethodGet, nil
		if rest, ok := strings.CutPrefix(loc.String(), p.Issuer+"/interaction/"); ok && !strings.Contains(rest, "/") {
			prompt, err := p.prompt(ctx, client, loc.String())
			if err != nil {
				return nil, err
			}
			method = http.MethodPost
			switch {
			case login.Deny:
				loc = loc.JoinPath("abort")
			case prompt == "login":
				loc = loc.JoinPath("login")
				form = url.Values{"login": {login.Account}, "amr": {strings.Join(login.AMR, ",")}}
			case prompt == "consent":
				loc = loc.JoinPath("consent")
			default:
				return nil, fmt.Errorf("authorize: unexpected prompt %q", prompt)
			}
		}
		next = loc
	}
	return nil, errors.New("authorize: too many redirects")
}

// step sends one request and returns its redirect target.
func (p *Provider) step(ctx context.Context, client *http.Client, method, target string, form url.Values) (*url.URL, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authorize: %s %s: %w", method, target, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	loc, err := res.Location()
	if res.StatusCode/100 != 3 || err != nil {
		return nil, fmt.Errorf("authorize: %s %s = %s, want a redirect: %s", method, target, res.Status, data)
	}
	return loc, nil
}

func (p *Provider) prompt(ctx context.Context, client *http.Client, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	res, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("authorize: interaction: %w", err)
	}
	defer res.Body.Close()
	var v struct {
		Prompt string `json:"prompt"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("authorize: interaction = %s, %v", res.Status, err)
	}
	return v.Prompt, nil
}
