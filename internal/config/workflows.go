package config

import "time"

// Workflows configures workflow definitions kept as files (package
// internal/workflow/defsync): the scheduler role reads Dir every
// ReloadInterval and stores each new version it finds, as the API would
// (docs/workflows.md, "Definitions from files"). The workflow role's own
// settings are in Workflow.
type Workflows struct {
	// Dir is the directory of definition files, one subdirectory per tenant
	// id: <dir>/<tenant id>/<workflow id>.yaml, .yml or .json. Neither it nor
	// anything in it may be writable by group or others. Default empty:
	// definitions are not read from files.
	Dir string `yaml:"dir"`
	// ReloadInterval is how often Dir is read again. Default 1m.
	ReloadInterval time.Duration `yaml:"reloadInterval"`
}

func baseWorkflows() Workflows {
	return Workflows{ReloadInterval: time.Minute}
}

func (c Config) validateWorkflows(ps *problems) {
	ps.positive("workflows.reloadInterval", c.Workflows.ReloadInterval)
}
