package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestValidateWebhooks(t *testing.T) {
	tests := []struct {
		name string
		prod bool
		edit func(*Config)
		want []string // problem keys, in order
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "defaults in production", prod: true, edit: func(*Config) {}},
		{name: "networks and ports", prod: true, edit: func(c *Config) {
			c.Webhooks.AllowNetworks = []string{"10.20.0.0/16", "fd00::/8", "127.0.0.1/32"}
			c.Webhooks.Ports = []int{443, 9443}
		}},
		{name: "http in dev", edit: func(c *Config) { c.Webhooks.AllowHTTP = true }},
		{name: "http in production", prod: true, edit: func(c *Config) {
			c.Webhooks.AllowHTTP = true
		}, want: []string{"webhooks.allowHTTP"}},
		{name: "not CIDR", edit: func(c *Config) {
			c.Webhooks.AllowNetworks = []string{"10.0.0.0/8", "10.0.0.1", "10.0.0.0/33", "intranet"}
		}, want: []string{"webhooks.allowNetworks", "webhooks.allowNetworks", "webhooks.allowNetworks"}},
		{name: "no ports", edit: func(c *Config) { c.Webhooks.Ports = nil }, want: []string{"webhooks.ports"}},
		{name: "ports out of range", edit: func(c *Config) {
			c.Webhooks.Ports = []int{0, 443, 65536}
		}, want: []string{"webhooks.ports", "webhooks.ports"}},
		{name: "durations and bounds", edit: func(c *Config) {
			w := &c.Webhooks
			w.Timeout, w.Backoff, w.MaxBackoff, w.RetryWindow, w.PollInterval, w.Republish = 0, time.Minute, time.Second, -time.Hour, 0, 0
			w.Concurrency = 0
		}, want: []string{"webhooks.timeout", "webhooks.maxBackoff", "webhooks.retryWindow", "webhooks.pollInterval",
			"webhooks.republish", "webhooks.concurrency"}},
		{name: "too much concurrency", edit: func(c *Config) {
			c.Webhooks.Concurrency = maxWebhookConcurrency + 1
		}, want: []string{"webhooks.concurrency"}},
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

func TestWebhooksFromEnv(t *testing.T) {
	c, err := Load("", []string{
		"IDVAULT_WEBHOOKS__ALLOWNETWORKS=127.0.0.0/8, ::1/128",
		"IDVAULT_WEBHOOKS__ALLOWHTTP=true",
		"IDVAULT_WEBHOOKS__PORTS=[41234]",
		"IDVAULT_WEBHOOKS__BACKOFF=1s",
		"IDVAULT_WEBHOOKS__REPUBLISH=5s",
	})
	if err != nil {
		t.Fatalf("Load(env) = %v, want nil", err)
	}
	w := c.Webhooks
	if !slices.Equal(w.AllowNetworks, []string{"127.0.0.0/8", "::1/128"}) || !w.AllowHTTP ||
		!slices.Equal(w.Ports, []int{41234}) || w.Backoff != time.Second || w.Republish != 5*time.Second {
		t.Errorf("Webhooks = %+v, want the environment's values", w)
	}
	if w.Timeout != 10*time.Second || w.MaxBackoff != time.Hour || w.RetryWindow != 24*time.Hour || w.Concurrency != 16 {
		t.Errorf("Webhooks = %+v, want the documented defaults for the keys not set", w)
	}
}

func TestWebhooksFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	data := "webhooks:\n  allowNetworks: [10.20.0.0/16]\n  ports: [443, \"x\"]\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err == nil {
		t.Error("Load(ports with a string) = nil, want an error")
	}
}

func TestWebhooksAllowPrefixes(t *testing.T) {
	w := Webhooks{AllowNetworks: []string{"10.20.30.40/16", "fd00::1/8", "bad"}}
	want := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	if got := w.AllowPrefixes(); !slices.Equal(got, want) {
		t.Errorf("AllowPrefixes() = %v, want %v", got, want)
	}
}
