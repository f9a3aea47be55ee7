package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Sentinel errors of Client.Do. Check them with errors.Is.
var (
	// ErrUnavailable means the circuit breaker is open (or half-open with
	// its probe out): the call was not sent.
	ErrUnavailable = errors.New("regula client: service unavailable (circuit open)")
	// ErrMalformed means a 2xx response body is not the JSON expected.
	ErrMalformed = errors.New("regula client: malformed response")
	// ErrTooLarge means a response body exceeds Config.MaxResponseBytes.
	ErrTooLarge = errors.New("regula client: response too large")
)

// StatusError reports a response whose status is not 2xx.
type StatusError struct {
	Service    string
	Method     string
	Path       string
	StatusCode int
	// RetryAfter is the wait the service asked for (429, 503), or zero.
	RetryAfter time.Duration
}

// Error names the call and the status, never the body.
func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %s %s: status %d", e.Service, e.Method, e.Path, e.StatusCode)
}

// Client calls one service. It is safe for concurrent use.
type Client struct {
	service string
	base    *url.URL
	cfg     Config
	http    *http.Client
	breaker *breaker
	logger  *slog.Logger
	sleep   func(context.Context, time.Duration) error
	now     func() time.Time
}

// New returns a Client for cfg, or an error wrapping ErrConfig. It reads the
// certificate files named in cfg.
func New(cfg Config, opts Options) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	base, err := parseBaseURL(cfg.URL, cfg.AllowLoopbackHTTP, cfg.CertFile != "")
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{
		service: opts.Service,
		base:    base,
		cfg:     cfg,
		logger:  opts.Logger,
		sleep:   opts.Sleep,
		now:     opts.Now,
	}
	if c.service == "" {
		c.service = "regula"
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.sleep == nil {
		c.sleep = sleepTimer
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.breaker = &breaker{
		failures: cfg.Breaker.Failures,
		coolDown: cfg.Breaker.CoolDown,
		now:      c.now,
		onChange: func(from, to State) {
			level := slog.LevelInfo
			if to == Open {
				level = slog.LevelWarn
			}
			c.logger.Log(context.Background(), level, "regula circuit breaker", "service", c.service, "from", from.String(), "to", to.String())
		},
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tc
	transport.MaxIdleConnsPerHost = 32
	c.http = &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c, nil
}

// Close releases idle connections. Calls in flight are not interrupted.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// BreakerState returns the circuit breaker's state.
func (c *Client) BreakerState() State {
	return c.breaker.current()
}

// Do sends method path (an endpoint path such as "/api/process", appended to
// the base URL's path) with query, the JSON encoding of in as the body when
// in is not nil, and decodes a 2xx JSON answer into out when out is not nil.
// Retries, timeout and breaker are described in the package doc. Errors
// wrap ErrUnavailable, ErrMalformed, ErrTooLarge, a *StatusError, the
// context's error or the transport's, and never contain in, out or query.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s: %s %s: encode request: %w", c.service, method, path, err)
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	target := u.String()

	callCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		if !c.breaker.allow() {
			if last != nil {
				return fmt.Errorf("%s: %s %s: %w (last attempt: %w)", c.service, method, path, ErrUnavailable, last)
			}
			return fmt.Errorf("%s: %s %s: %w", c.service, method, path, ErrUnavailable)
		}
		r := c.attempt(ctx, callCtx, method, path, target, body, out)
		c.breaker.done(r.outcome)
		if r.err == nil {
			return nil
		}
		last = r.err
		if !r.retryable || attempt >= c.cfg.Retries || r.retryAfter > c.cfg.MaxRetryAfter {
			return r.err
		}
		wait := r.retryAfter
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		if deadline, ok := callCtx.Deadline(); ok && time.Until(deadline) < wait {
			return r.err
		}
		c.logger.Debug("regula request retry", "service", c.service, "method", method, "path", path, "attempt", attempt+1, "wait", wait, "error", r.err)
		if err := c.sleep(callCtx, wait); err != nil {
			return fmt.Errorf("%s: %s %s: wait before retry: %w (last attempt: %w)", c.service, method, path, err, r.err)
		}
	}
}

// result is one attempt's result.
type result struct {
	err        error
	outcome    outcome
	retryable  bool
	retryAfter time.Duration
}

func (c *Client) attempt(parent, ctx context.Context, method, path, target string, body []byte, out any) result {
	fail := func(o outcome, retryable bool, format string, args ...any) result {
		prefix := []any{c.service, method, path}
		return result{err: fmt.Errorf("%s: %s %s: "+format, append(prefix, args...)...), outcome: o, retryable: retryable}
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return fail(neutral, false, "build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "idvault")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats the URL, query included: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		switch {
		case parent.Err() != nil:
			return fail(neutral, false, "%w", err)
		case isDialError(err):
			return fail(failure, true, "%w", err)
		default:
			return fail(failure, false, "%w", err)
		}
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Service: c.service, Method: method, Path: path, StatusCode: resp.StatusCode}
		r := result{err: se, outcome: success}
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			r.outcome, r.retryable = neutral, true
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			r.outcome, r.retryable = failure, true
		default:
			if resp.StatusCode >= 500 {
				r.outcome = failure
			}
		}
		if r.retryable {
			se.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
			r.retryAfter = se.RetryAfter
		}
		return r
	}

	if resp.ContentLength > c.cfg.MaxResponseBytes {
		return fail(failure, false, "%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, c.cfg.MaxResponseBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		if parent.Err() != nil {
			return fail(neutral, false, "read response: %w", err)
		}
		return fail(failure, false, "read response: %w", err)
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return fail(failure, false, "%w: limit %d bytes", ErrTooLarge, c.cfg.MaxResponseBytes)
	}
	if out == nil {
		return result{outcome: success}
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fail(failure, false, "%w: content type is not application/json", ErrMalformed)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fail(failure, false, "%w: %w", ErrMalformed, err)
	}
	return result{outcome: success}
}

// isDialError reports an error from opening the connection, before any byte
// of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// backoff returns the wait before retry attempt (from 0): half of
// min(base·2^attempt, max) fixed, the other half random.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Backoff.Max
	if attempt < 30 {
		if step := c.cfg.Backoff.Base << attempt; step < d {
			d = step
		}
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(d-half+1)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
// It returns zero for an absent, malformed or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Clamp far beyond any MaxRetryAfter, so that the product cannot
		// overflow.
		return time.Duration(min(secs, 1<<30)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleepTimer waits d or until ctx is done.
func sleepTimer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
