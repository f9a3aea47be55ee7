package config

import (
	"slices"
	"testing"
	"time"
)

func TestValidateWorkflows(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // problem keys, in order
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "a directory", edit: func(c *Config) { c.Workflows.Dir = "/etc/idvault/workflows" }},
		{name: "zero interval", edit: func(c *Config) { c.Workflows.ReloadInterval = 0 }, want: []string{"workflows.reloadInterval"}},
		{name: "negative interval", edit: func(c *Config) { c.Workflows.ReloadInterval = -time.Second }, want: []string{"workflows.reloadInterval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			got := keysOf(problemsOf(t, c.Validate()))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() problems = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWorkflowsDefaultsAndEnv(t *testing.T) {
	if w := Default().Workflows; w != (Workflows{ReloadInterval: time.Minute}) {
		t.Errorf("Default().Workflows = %+v, want no directory and a 1m interval", w)
	}
	c, err := Load("", []string{"IDVAULT_WORKFLOWS__DIR=/srv/workflows", "IDVAULT_WORKFLOWS__RELOADINTERVAL=5m"})
	if err != nil {
		t.Fatalf("Load(env) = %v, want nil", err)
	}
	if want := (Workflows{Dir: "/srv/workflows", ReloadInterval: 5 * time.Minute}); c.Workflows != want {
		t.Errorf("Load(env).Workflows = %+v, want %+v", c.Workflows, want)
	}
}
