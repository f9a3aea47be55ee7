package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/ratelimit"
	"github.com/idvault/idvault/internal/secret"
)

// Problem is one invalid setting found by Validate. Validate joins every
// Problem it finds with errors.Join; find them with errors.As or by
// unwrapping the joined error.
type Problem struct {
	// Key is the key path, such as "api.listen".
	Key string
	// Msg says what is wrong, without the key.
	Msg string
}

// Error returns "key: msg".
func (p *Problem) Error() string { return p.Key + ": " + p.Msg }

// problems collects Problems for Validate.
type problems []error

func (ps *problems) add(key, format string, args ...any) {
	*ps = append(*ps, &Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		ps.add(key, "must be a positive duration, got %s", d)
	}
}

func (ps *problems) atLeast(key string, n, minimum int64) {
	if n < minimum {
		ps.add(key, "must be at least %d, got %d", minimum, n)
	}
}

func (ps *problems) oneOf(key, got string, allowed ...string) {
	if !slices.Contains(allowed, got) {
		ps.add(key, "must be one of %s, got %q", strings.Join(allowed, ", "), got)
	}
}

func (ps *problems) knownType(key, got string, known map[string]bool) {
	if !known[got] {
		names := make([]string, 0, len(known))
		for n := range known {
			names = append(names, n)
		}
		slices.Sort(names)
		ps.add(key, "unknown type %q; this build knows %s", got, strings.Join(names, ", "))
	}
}

// Validate reports every problem with c at once, joined with errors.Join,
// each a *Problem naming its key path; it returns nil when c is valid.
// Validate does no I/O: it checks that files are named, not that they
// exist, and that secret references are well formed, not that they resolve.
// It expects derived keys to be filled in, as Load and Default do.
func (c Config) Validate() error {
	var ps problems
	prod := c.Mode == ModeProduction
	ps.oneOf("mode", string(c.Mode), string(ModeDev), string(ModeProduction))
	if c.DataDir == "" {
		ps.add("dataDir", "must not be empty")
	}
	c.validateRoles(&ps)
	ps.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	ps.oneOf("log.format", c.Log.Format, "json", "text")
	c.validateAPI(&ps, prod)

	ps.knownType("store.type", c.Store.Type, storeTypes)
	if c.Store.Type == "sqlite" && c.Store.SQLite.Path == "" {
		ps.add("store.sqlite.path", "must not be empty")
	}
	ps.knownType("blob.type", c.Blob.Type, blobTypes)
	if c.Blob.Type == "file" && c.Blob.File.Dir == "" {
		ps.add("blob.file.dir", "must not be empty")
	}
	ps.knownType("queue.type", c.Queue.Type, queueTypes)
	ps.positive("queue.visibilityTimeout", c.Queue.VisibilityTimeout)
	ps.atLeast("queue.maxAttempts", int64(c.Queue.MaxAttempts), 1)
	ps.positive("queue.retryBackoff", c.Queue.RetryBackoff)
	ps.positive("queue.maxRetryBackoff", c.Queue.MaxRetryBackoff)
	if c.Queue.RetryBackoff > 0 && c.Queue.MaxRetryBackoff > 0 && c.Queue.MaxRetryBackoff < c.Queue.RetryBackoff {
		ps.add("queue.maxRetryBackoff", "must not be less than queue.retryBackoff (%s), got %s", c.Queue.RetryBackoff, c.Queue.MaxRetryBackoff)
	}

	c.validateCrypto(&ps, prod)
	if c.API.RateLimit.Enabled {
		if _, err := c.API.RateLimit.EffectiveProfile(); err != nil {
			ps.add("api.rateLimit", "%v", err)
		}
	}
	if _, err := ratelimit.ParsePrefixes(c.API.RateLimit.TrustedProxies); err != nil {
		ps.add("api.rateLimit.trustedProxies", "%v", err)
	}

	ps.positive("sessions.defaultTTL", c.Sessions.DefaultTTL)
	ps.positive("sessions.maxTTL", c.Sessions.MaxTTL)
	if c.Sessions.DefaultTTL > 0 && c.Sessions.MaxTTL > 0 && c.Sessions.MaxTTL < c.Sessions.DefaultTTL {
		ps.add("sessions.maxTTL", "must not be less than sessions.defaultTTL (%s), got %s", c.Sessions.DefaultTTL, c.Sessions.MaxTTL)
	}
	ps.positive("scheduler.interval", c.Scheduler.Interval)
	ps.positive("scheduler.leaseTTL", c.Scheduler.LeaseTTL)
	ps.positive("scheduler.republishAfter", c.Scheduler.RepublishAfter)
	ps.positive("scheduler.sweepInterval", c.Scheduler.SweepInterval)
	ps.positive("scheduler.orphanGrace", c.Scheduler.OrphanGrace)
	ps.positive("scheduler.verifyInterval", c.Scheduler.VerifyInterval)
	ps.atLeast("scheduler.verifyBatch", int64(c.Scheduler.VerifyBatch), 1)
	if c.Scheduler.OrphanGrace > 0 && c.API.WriteTimeout > 0 && c.Scheduler.OrphanGrace <= c.API.ReadTimeout+c.API.WriteTimeout {
		ps.add("scheduler.orphanGrace", "must be longer than api.readTimeout + api.writeTimeout (%s), the longest an upload can take, got %s", c.API.ReadTimeout+c.API.WriteTimeout, c.Scheduler.OrphanGrace)
	}
	if c.Scheduler.Interval > 0 && c.Scheduler.LeaseTTL > 0 && c.Scheduler.LeaseTTL <= c.Scheduler.Interval {
		ps.add("scheduler.leaseTTL", "must be longer than scheduler.interval (%s) so the lease is renewed before it runs out, got %s", c.Scheduler.Interval, c.Scheduler.LeaseTTL)
	}
	ps.atLeast("workflow.concurrency", int64(c.Workflow.Concurrency), 1)
	c.validateAuth(&ps, prod)
	c.validateAudit(&ps, prod)
	c.validateRegula(&ps, prod)
	c.validateWebhooks(&ps, prod)
	c.validateWorkflows(&ps)
	return errors.Join(ps...)
}

func (c Config) validateRoles(ps *problems) {
	if len(c.Roles) == 0 {
		ps.add("roles", "must list at least one role")
	}
	all := AllRoles()
	seen := make(map[Role]bool, len(c.Roles))
	for _, r := range c.Roles {
		switch {
		case !slices.Contains(all, r):
			ps.add("roles", "unknown role %q; roles are api, workflow, scheduler, audit, indexer", r)
		case seen[r]:
			ps.add("roles", "role %q is listed twice", r)
		}
		seen[r] = true
	}
}

func (c Config) validateAPI(ps *problems, prod bool) {
	a := c.API
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		ps.add("api.listen", "must be host:port, got %q", a.Listen)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil {
		ps.add("api.listen", "port must be a number from 0 to 65535, got %q", port)
	} else if n == 0 && prod {
		ps.add("api.listen", "port 0 (any free port) is not allowed in production mode")
	} else if strings.ContainsAny(host, " /") {
		ps.add("api.listen", "host must be an IP address or a host name, got %q", host)
	}
	// An empty publicURL is derived from api.listen; when that is invalid,
	// its problem is already reported.
	if a.PublicURL != "" || err == nil {
		validatePublicURL(ps, a.PublicURL, prod)
	}
	switch t := a.TLS; {
	case t.CertFile == "" && t.KeyFile == "":
		if prod {
			ps.add("api.tls.certFile", "is required in production mode (dev mode generates a self-signed certificate)")
			ps.add("api.tls.keyFile", "is required in production mode")
		}
	case t.CertFile == "":
		ps.add("api.tls.certFile", "must be set together with api.tls.keyFile")
	case t.KeyFile == "":
		ps.add("api.tls.keyFile", "must be set together with api.tls.certFile")
	}
	ps.positive("api.tls.reloadInterval", a.TLS.ReloadInterval)
	ps.atLeast("api.maxJSONBytes", a.MaxJSONBytes, 1)
	ps.atLeast("api.maxUploadBytes", a.MaxUploadBytes, 1)
	ps.atLeast("api.maxImagePixels", a.MaxImagePixels, 1)
	ps.positive("api.readHeaderTimeout", a.ReadHeaderTimeout)
	ps.positive("api.readTimeout", a.ReadTimeout)
	ps.positive("api.writeTimeout", a.WriteTimeout)
	ps.positive("api.idleTimeout", a.IdleTimeout)
	ps.positive("api.shutdownTimeout", a.ShutdownTimeout)
	if a.ReadHeaderTimeout > 0 && a.ReadTimeout > 0 && a.ReadHeaderTimeout > a.ReadTimeout {
		ps.add("api.readHeaderTimeout", "must not exceed api.readTimeout (%s), got %s", a.ReadTimeout, a.ReadHeaderTimeout)
	}
}

func validatePublicURL(ps *problems, s string, prod bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		ps.add("api.publicURL", "must be an absolute http or https URL, got %q", s)
		return
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		ps.add("api.publicURL", "must not have user info, a query or a fragment, got %q", s)
	}
	if prod && u.Scheme != "https" {
		ps.add("api.publicURL", "must use https in production mode, got %q", s)
	}
}

// secretRef checks a secret reference: present, well formed, and not a
// literal in production mode.
func (ps *problems) secretRef(key, r string, prod bool) {
	switch {
	case r == "":
		ps.add(key, "must not be empty")
	case secret.IsLiteral(r):
		if prod {
			ps.add(key, "must be a reference (env:NAME or file:/path), not a literal secret, in production mode")
		}
	default:
		if err := secret.Check(r); err != nil {
			ps.add(key, "%v", err)
		}
	}
}

var keyIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

func (c Config) validateCrypto(ps *problems, prod bool) {
	ref := func(key, r string) { ps.secretRef(key, r, prod) }
	cr := c.Crypto
	if !c.HasRootKeys() && prod {
		ps.add("crypto.rootKey", "a root key is required in production mode: set crypto.rootKey (a reference such as env:IDVAULT_ROOT_KEY or file:/run/secrets/root.key), crypto.rootKeys or crypto.kms")
	}
	ids := map[string]string{}
	id := func(key, v string) {
		if !keyIDPattern.MatchString(v) {
			ps.add(key, "must be 1 to 32 characters of a-z, 0-9 and -, got %q", v)
		}
		if prev, dup := ids[v]; dup {
			ps.add(key, "root key id %q is already used by %s", v, prev)
		}
		ids[v] = key
	}
	if cr.RootKey != "" {
		ref("crypto.rootKey", string(cr.RootKey))
		ids["root"] = "crypto.rootKey"
	}
	for i, k := range cr.RootKeys {
		key := fmt.Sprintf("crypto.rootKeys[%d]", i)
		id(key+".id", k.ID)
		ref(key+".key", string(k.Key))
	}
	for i, k := range cr.KMS {
		key := fmt.Sprintf("crypto.kms[%d]", i)
		id(key+".id", k.ID)
		if u, err := url.Parse(k.URL); err != nil || u.Scheme == "" {
			ps.add(key+".url", "must be a Go Cloud secrets URL such as hashivault://key-name")
		}
	}
	ps.oneOf("crypto.scheme", cr.Scheme, "aes256gcm", "fernet")
	if cr.Scheme == "fernet" && len(cr.FernetKeys) == 0 {
		ps.add("crypto.fernetKeys", "must list at least one key when crypto.scheme is fernet")
	}
	for i, k := range cr.FernetKeys {
		ref(fmt.Sprintf("crypto.fernetKeys[%d]", i), string(k))
	}
}
