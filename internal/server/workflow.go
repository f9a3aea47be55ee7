package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/regula/docreader"
	"github.com/idvault/idvault/internal/regula/faceapi"
	"github.com/idvault/idvault/internal/regula/httpx"
	"github.com/idvault/idvault/internal/session"
	"github.com/idvault/idvault/internal/webhook"
	"github.com/idvault/idvault/internal/workflow"
	"github.com/idvault/idvault/internal/workflow/engine"
)

// workflowParts are the services the API and workflow roles share: the
// definitions store, the engine that runs them and the webhook service its
// webhook steps notify through.
type workflowParts struct {
	definitions *engine.Definitions
	engine      *engine.Engine
	webhooks    *webhook.Service
	// local hands sessions from this process's API to its workflow role.
	local *workflow.Local
}

// workflowOnce builds the workflow parts once per Server.
type workflowOnce struct {
	once  sync.Once
	parts workflowParts
	err   error
}

// errNotConfigured is the failure of an automated step whose Regula
// service has no url: a technical failure, retried as the step says, so
// that configuring the service lets waiting sessions continue.
var errNotConfigured = errors.New("service not configured")

// unconfigured stands for a Regula service without a url.
type unconfigured struct{ key string }

func (u unconfigured) Process(context.Context, [][]byte, string) (docreader.Result, error) {
	return docreader.Result{}, fmt.Errorf("%s: %w", u.key, errNotConfigured)
}

func (u unconfigured) Match(context.Context, []byte, []byte) (float64, error) {
	return 0, fmt.Errorf("%s: %w", u.key, errNotConfigured)
}

func (u unconfigured) Liveness(context.Context, string) (faceapi.LivenessResult, error) {
	return faceapi.LivenessResult{}, fmt.Errorf("%s: %w", u.key, errNotConfigured)
}

// regulaClients returns the engine's Document Reader and Face API clients
// from regula.*; a service without a url is a stand-in whose every call
// fails.
func (s *Server) regulaClients() (engine.DocReader, engine.FaceAPI, error) {
	var dr engine.DocReader = unconfigured{key: "regula.docReader"}
	var fa engine.FaceAPI = unconfigured{key: "regula.faceAPI"}
	if c := s.Config.Regula.DocReader; c.Configured() {
		client, err := docreader.New(c.Client(), httpx.Options{Logger: s.Log})
		if err != nil {
			return nil, nil, fmt.Errorf("regula.docReader: %w", err)
		}
		dr = client
	}
	if c := s.Config.Regula.FaceAPI.Service(); c.Configured() {
		client, err := faceapi.New(c.Client(), httpx.Options{Logger: s.Log})
		if err != nil {
			return nil, nil, fmt.Errorf("regula.faceAPI: %w", err)
		}
		fa = client
	}
	return dr, fa, nil
}

// webhookOptions returns the webhook service's options from webhooks.*:
// the SSRF policy (the strict default, opened only by allowNetworks,
// allowHTTP and ports) and the delivery schedule.
func webhookOptions(c config.Webhooks) webhook.Options {
	ports := make([]uint16, 0, len(c.Ports))
	for _, p := range c.Ports {
		if p > 0 && p <= math.MaxUint16 {
			ports = append(ports, uint16(p))
		}
	}
	return webhook.Options{
		Policy:  webhook.Policy{Allow: c.AllowPrefixes(), AllowHTTP: c.AllowHTTP, Ports: ports},
		Timeout: c.Timeout, Backoff: c.Backoff, MaxBackoff: c.MaxBackoff, RetryWindow: c.RetryWindow,
		PollInterval: c.PollInterval, Republish: c.Republish, Concurrency: c.Concurrency,
	}
}

// workflows returns the workflow parts, building them on first use: the
// definitions store, the webhook service (signing secrets in the keyring,
// the SSRF policy and schedule of webhooks.*) and the engine over both.
func (s *Server) workflows() (workflowParts, error) {
	s.wf.once.Do(func() {
		s.wf.parts, s.wf.err = s.buildWorkflows()
	})
	return s.wf.parts, s.wf.err
}

func (s *Server) buildWorkflows() (workflowParts, error) {
	defs := engine.NewDefinitions(s.Backend, s.Barrier, nil)
	hooks, err := webhook.New(webhook.Deps{Backend: s.Backend, Barrier: s.Barrier, Secrets: s.Keyring, Broker: s.Broker,
		Audit: s.Audit, Log: s.Log}, webhookOptions(s.Config.Webhooks))
	if err != nil {
		return workflowParts{}, fmt.Errorf("webhooks: %w", err)
	}
	dr, fa, err := s.regulaClients()
	if err != nil {
		return workflowParts{}, err
	}
	eng, err := engine.New(engine.Config{Backend: s.Backend, Barrier: s.Barrier, Definitions: defs, Audit: s.Audit,
		DocReader: dr, FaceAPI: fa, Files: s.Files, Notifier: Notifier{Webhooks: hooks}, Log: s.Log,
		MatchThreshold: s.Config.Regula.FaceAPI.MatchThreshold})
	if err != nil {
		return workflowParts{}, err
	}
	return workflowParts{definitions: defs, engine: eng, webhooks: hooks, local: workflow.NewLocal()}, nil
}

// Notifier is the engine's webhook Notifier over the webhook service.
type Notifier struct {
	Webhooks *webhook.Service
}

// Notify enqueues an event of eventType about session sessionID of tenant
// for the tenant's subscriptions. The event id is "<session>.<event type>",
// stable across the retries of a webhook step, so a retried step adds no
// delivery. A session.completed event carries the session's decision and
// so needs status approved or rejected.
func (n Notifier) Notify(ctx context.Context, tenant, eventType, sessionID string, status session.Status) error {
	if _, err := n.Webhooks.Enqueue(ctx, tenant, sessionEvent(eventType, sessionID, status)); err != nil {
		return fmt.Errorf("notify %s: %w", eventType, err)
	}
	return nil
}

// Attach returns ctx carrying the same event as Notify, to commit with the
// next write to the session collection (webhook.Service.Attach).
func (n Notifier) Attach(ctx context.Context, tenant, eventType, sessionID string, status session.Status) (context.Context, func(context.Context), error) {
	actx, publish, err := n.Webhooks.Attach(ctx, tenant, session.Collection, sessionEvent(eventType, sessionID, status))
	if err != nil {
		return nil, nil, fmt.Errorf("notify %s: %w", eventType, err)
	}
	return actx, publish, nil
}

// sessionEvent is the event eventType about session sessionID in status.
func sessionEvent(eventType, sessionID string, status session.Status) webhook.Event {
	ev := webhook.Event{ID: sessionID + "." + eventType, Type: webhook.EventType(eventType),
		Data: webhook.Data{SessionID: sessionID, Status: status}}
	if ev.Type == webhook.EventSessionCompleted {
		switch status {
		case session.StatusApproved:
			ev.Data.Decision = webhook.DecisionApproved
		case session.StatusRejected:
			ev.Data.Decision = webhook.DecisionRejected
		}
	}
	return ev
}
