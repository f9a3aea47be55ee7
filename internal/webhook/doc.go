// Package webhook tells a tenant's own systems about its sessions: signed
// HTTP POSTs to the URLs the tenant subscribed, delivered at least once,
// retried for a day, logged per subscription, and never to an address
// inside the platform's network.
//
// # Subscriptions and secrets
//
// A subscription (collection CollSubscriptions, tenant-scoped, body sealed)
// holds a URL, event types and an active flag. Its signing secret is made
// by the platform ("whsec_" and 32 random bytes in base64url), returned
// once by Create or RotateSecret, and kept by Secrets (the keyring, which
// seals it directly under the root key, apart from the data keys);
// nothing returns it afterwards. A rotation keeps the previous secret
// signing for a grace period of the caller's choice (DefaultSecretGrace),
// so every delivery in that period carries two v1 signatures.
//
// # Wire format
//
// POST <url> with the JSON Payload as body and the headers
//
//	Content-Type:        application/json
//	Idvault-Event-Id:    <event id>
//	Idvault-Event-Type:  <event type>
//	Idvault-Delivery-Id: <delivery id>
//	Idvault-Signature:   t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=<previous secret's>]
//
// Receivers check the signature with Verify: constant-time comparison and a
// timestamp tolerance (DefaultTolerance, five minutes) against replay. The
// event id lets a receiver drop duplicates, which at-least-once delivery
// produces.
//
// # Delivery
//
// Enqueue writes one delivery record per matching subscription (collection
// CollDeliveries, id derived from subscription and event id, so enqueuing
// again changes nothing) and, in the same atomic batch, a schedule record
// (CollSchedule, under store.PlatformTenant, holding ids and a due time in
// clear and nothing else), then publishes the delivery's ids on Topic.
// A worker (Run, Handle) claims the delivery with compare-and-swap, sends
// it, and records the attempt (time, duration, status code, error kind; no
// response body) with the next due time or the final status, again with
// its schedule record in one batch. A 2xx answer delivers; anything else,
// including a redirect (never followed), is retried after an exponential
// backoff with jitter until Options.RetryWindow has passed since the
// delivery was enqueued, then the delivery fails. PublishDue republishes
// what the schedule says is due, which covers retries, lost messages and
// workers that died before acking (their claims expire; the broker also
// redelivers their unacked messages after its visibility timeout).
//
// # Threat model
//
// The subscription URL is attacker-influenced input (any tenant admin sets
// it), so requests are server-side request forgery risks: the Policy
// refuses private (RFC 1918, RFC 4193), loopback, link-local, unspecified,
// multicast, CGNAT, reserved and documentation addresses, and always the
// cloud metadata addresses; only an explicit allow-list lifts the rest.
// The URL is checked when it is stored (https, no user info, allowed port,
// resolved addresses) and, what counts, every connection's address is
// checked when it is dialled, after resolution, by the dialer and again in
// the socket's Control hook, so DNS rebinding cannot reach a refused
// address. No proxy from the environment is used; redirects are not
// followed; response bodies are read to at most MaxResponseBytes and
// discarded.
//
// Payloads hold ids and states only, no personal data (see Event): they
// leave the platform's protection. Queue messages hold ids only. Logs name
// tenants, subscriptions and deliveries, never a URL (it may embed a
// credential), payload, secret or response text.
package webhook
