package config

import (
	"slices"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/regula/httpx"
)

func TestValidateRegula(t *testing.T) {
	tests := []struct {
		name string
		prod bool
		edit func(*Config)
		want []string // problem keys, in order
	}{
		{name: "unconfigured is valid", edit: func(*Config) {}},
		{name: "https in production", prod: true, edit: func(c *Config) {
			c.Regula.DocReader.URL = "https://docreader.internal:8443"
			c.Regula.FaceAPI.URL = "https://faceapi.internal"
		}},
		{name: "loopback http in dev", edit: func(c *Config) {
			c.Regula.DocReader.URL, c.Regula.DocReader.AllowLoopbackHTTP = "http://127.0.0.1:8080", true
			c.Regula.FaceAPI.URL, c.Regula.FaceAPI.AllowLoopbackHTTP = "http://localhost:41101", true
		}},
		{name: "http in production", prod: true, edit: func(c *Config) {
			c.Regula.DocReader.URL = "http://docreader.internal"
		}, want: []string{"regula.docReader.url"}},
		{name: "loopback http in production", prod: true, edit: func(c *Config) {
			c.Regula.FaceAPI.URL, c.Regula.FaceAPI.AllowLoopbackHTTP = "http://127.0.0.1:41101", true
		}, want: []string{"regula.faceAPI.allowLoopbackHTTP", "regula.faceAPI.url"}},
		{name: "http without allowLoopbackHTTP", edit: func(c *Config) {
			c.Regula.DocReader.URL = "http://127.0.0.1:8080"
		}, want: []string{"regula.docReader.url"}},
		{name: "http to a non-loopback host", edit: func(c *Config) {
			c.Regula.DocReader.URL, c.Regula.DocReader.AllowLoopbackHTTP = "http://10.0.0.5", true
		}, want: []string{"regula.docReader.url"}},
		{name: "allowLoopbackHTTP for a remote https host", edit: func(c *Config) {
			c.Regula.DocReader.URL, c.Regula.DocReader.AllowLoopbackHTTP = "https://docreader.example.com", true
		}, want: []string{"regula.docReader.allowLoopbackHTTP"}},
		{name: "other scheme", edit: func(c *Config) {
			c.Regula.FaceAPI.URL = "ftp://faceapi"
		}, want: []string{"regula.faceAPI.url"}},
		{name: "user info and query", edit: func(c *Config) {
			c.Regula.FaceAPI.URL = "https://user:pw@faceapi/?k=v"
		}, want: []string{"regula.faceAPI.url"}},
		{name: "no host", edit: func(c *Config) {
			c.Regula.FaceAPI.URL = "faceapi:8443"
		}, want: []string{"regula.faceAPI.url"}},
		{name: "cert without key", edit: func(c *Config) {
			c.Regula.DocReader.URL, c.Regula.DocReader.CertFile = "https://docreader", "/etc/c.pem"
		}, want: []string{"regula.docReader.certFile"}},
		{name: "client certificate over http", edit: func(c *Config) {
			d := &c.Regula.DocReader
			d.URL, d.AllowLoopbackHTTP, d.CertFile, d.KeyFile = "http://127.0.0.1:1", true, "/c.pem", "/k.pem"
		}, want: []string{"regula.docReader.certFile"}},
		{name: "durations and bounds", edit: func(c *Config) {
			d := &c.Regula.DocReader
			d.URL = "https://docreader"
			d.Timeout, d.Retries, d.Backoff.Base, d.Backoff.Max = 0, 11, -time.Second, -2*time.Second
			d.MaxRetryAfter, d.Breaker.Failures, d.Breaker.CoolDown = 0, 0, 0
			d.MaxRequestBytes, d.MaxResponseBytes = 0, -1
		}, want: []string{"regula.docReader.timeout", "regula.docReader.retries", "regula.docReader.backoff.base",
			"regula.docReader.backoff.max", "regula.docReader.backoff.max", "regula.docReader.maxRetryAfter",
			"regula.docReader.breaker.failures", "regula.docReader.breaker.coolDown",
			"regula.docReader.maxRequestBytes", "regula.docReader.maxResponseBytes"}},
		{name: "match threshold above 1", edit: func(c *Config) {
			c.Regula.FaceAPI.MatchThreshold = 1.5
		}, want: []string{"regula.faceAPI.matchThreshold"}},
		{name: "match threshold zero", edit: func(c *Config) {
			c.Regula.FaceAPI.MatchThreshold = 0
		}, want: []string{"regula.faceAPI.matchThreshold"}},
		{name: "gateway quota of one call", edit: func(c *Config) {
			c.Regula.Gateway.MaxCallsPerSession = 1
		}},
		{name: "gateway quota zero", edit: func(c *Config) {
			c.Regula.Gateway.MaxCallsPerSession = 0
		}, want: []string{"regula.gateway.maxCallsPerSession"}},
		{name: "gateway quota negative", edit: func(c *Config) {
			c.Regula.Gateway.MaxCallsPerSession = -1
		}, want: []string{"regula.gateway.maxCallsPerSession"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if tt.prod {
				c = production()
			}
			tt.edit(&c)
			got := keysOf(problemsOf(t, c.Validate()))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() problems = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRegulaClientAccepted checks that a configuration Validate accepts is
// one the Regula HTTP client accepts too, with the defaults carried over.
func TestRegulaClientAccepted(t *testing.T) {
	c := Default()
	c.Regula.FaceAPI.URL, c.Regula.FaceAPI.AllowLoopbackHTTP = "http://127.0.0.1:41101", true
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	hc := c.Regula.FaceAPI.Service().Client()
	if hc.Timeout != 30*time.Second || hc.Retries != 2 || hc.Breaker.Failures != 5 || hc.MaxResponseBytes != 32<<20 {
		t.Errorf("Client() = %+v, want the documented defaults", hc)
	}
	if got := c.Regula.Gateway.MaxCallsPerSession; got != 50 {
		t.Errorf("Regula.Gateway.MaxCallsPerSession = %d, want the documented default 50", got)
	}
	cl, err := httpx.New(hc, httpx.Options{Service: "faceapi"})
	if err != nil {
		t.Fatalf("httpx.New(validated config) = %v, want nil", err)
	}
	cl.Close()
	if c.Regula.DocReader.Configured() || !c.Regula.FaceAPI.Service().Configured() {
		t.Errorf("Configured() = %v, %v; want false for docReader, true for faceAPI",
			c.Regula.DocReader.Configured(), c.Regula.FaceAPI.Service().Configured())
	}
}

func TestRegulaFromEnv(t *testing.T) {
	c, err := Load("", []string{
		"IDVAULT_REGULA__FACEAPI__URL=https://faceapi.internal",
		"IDVAULT_REGULA__FACEAPI__MATCHTHRESHOLD=0.8",
		"IDVAULT_REGULA__DOCREADER__BREAKER__COOLDOWN=1m",
		"IDVAULT_REGULA__GATEWAY__MAXCALLSPERSESSION=7",
	})
	if err != nil {
		t.Fatalf("Load(env) = %v, want nil", err)
	}
	if c.Regula.FaceAPI.URL != "https://faceapi.internal" || c.Regula.FaceAPI.MatchThreshold != 0.8 || c.Regula.DocReader.Breaker.CoolDown != time.Minute ||
		c.Regula.Gateway.MaxCallsPerSession != 7 {
		t.Errorf("Regula = %+v, want the environment's values", c.Regula)
	}
}
