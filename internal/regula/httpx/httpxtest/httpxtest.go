// Package httpxtest wires the Regula clients (internal/regula/docreader,
// internal/regula/faceapi) to real loopback servers for their tests: to a
// stand-in of internal/regula/regulatest with a manual clock and a recording
// sleeper, or with the default configuration to any server. Only tests
// import it; it depends on regulatest, whose TestOnlyTestsImport therefore
// guards it too.
//
// httpx's own tests cannot import it (httpxtest imports httpx) and keep
// their own helpers.
package httpxtest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/regula/regulatest"
	"github.com/idvault/idvault/internal/testenv/testclock"
)

// Client is what the helpers need of a Regula client.
type Client interface{ Close() }

// Stand is what Wire needs of a stand-in, such as *regulatest.DocReader.
type Stand interface {
	URL() string
	CAFile() string
}

// Env is a stand-in and a client wired to it by Wire.
type Env[S Stand, C Client] struct {
	Stand  S
	Client C
	// Clock is the client's clock, which starts at the wall clock's time
	// and moves only when advanced.
	Clock *testclock.Clock
	// Sleep records the client's retry waits, which take no time.
	Sleep *regulatest.Sleeper
}

// Wire builds a client with newClient (such as docreader.New) for stand,
// trusting stand's certificate when it serves https. The configuration
// allows plain http to loopback, retries twice, and opens the breaker after
// 3 failures for a minute; edit, when not nil, changes it first. The client
// is closed when the test ends.
func Wire[S Stand, C Client](tb testing.TB, stand S, newClient func(httpx.Config, httpx.Options) (C, error), edit func(*httpx.Config)) Env[S, C] {
	tb.Helper()
	e := Env[S, C]{Stand: stand, Clock: testclock.New(time.Now()), Sleep: &regulatest.Sleeper{}}
	cfg := httpx.Config{
		URL:               stand.URL(),
		AllowLoopbackHTTP: true,
		CAFile:            stand.CAFile(),
		Retries:           2,
		Breaker:           httpx.Breaker{Failures: 3, CoolDown: time.Minute},
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := newClient(cfg, httpx.Options{Now: e.Clock.Now, Sleep: e.Sleep.Sleep})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(c.Close)
	e.Client = c
	return e
}

// Plain builds a client with newClient for url, a loopback http server, in
// the default configuration (no retries, the real clock and sleep). The
// client is closed when the test ends.
func Plain[C Client](tb testing.TB, url string, newClient func(httpx.Config, httpx.Options) (C, error)) C {
	tb.Helper()
	c, err := newClient(httpx.Config{URL: url, AllowLoopbackHTTP: true}, httpx.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Answering starts a real server that answers every request 200 with body
// as application/json, for answers a stand-in never sends, and returns a
// Plain client for it. Server and client are closed when the test ends.
func Answering[C Client](tb testing.TB, body string, newClient func(httpx.Config, httpx.Options) (C, error)) C {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	tb.Cleanup(srv.Close)
	return Plain(tb, srv.URL, newClient)
}

// WantRejected posts body as JSON to path on stand through a Plain client
// and fails the test unless the stand-in answers 400 Bad Request and the
// reason it keeps for the rejection contains reason. Tests use it to prove
// that a stand-in refuses a request the real service would refuse, so that
// a client that dropped a required field fails its tests.
func WantRejected(tb testing.TB, stand *regulatest.Server, path string, body any, reason string) {
	tb.Helper()
	c := Plain(tb, stand.URL(), httpx.New)
	var out json.RawMessage
	err := c.Do(context.Background(), http.MethodPost, path, nil, body, &out)
	var se *httpx.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest {
		tb.Fatalf("Do(POST %s) = %v, want status 400", path, err)
	}
	rej := stand.Rejections()
	if !strings.Contains(rej[len(rej)-1], reason) {
		tb.Errorf("rejection = %q, want it to name %q", rej[len(rej)-1], reason)
	}
}
