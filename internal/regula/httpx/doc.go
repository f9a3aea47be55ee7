// Package httpx is the HTTP plumbing shared by the clients of Regula's
// Document Reader (internal/regula/docreader) and Face API
// (internal/regula/faceapi) services: transport security, JSON encoding,
// bounded retries and a circuit breaker. It knows nothing of either API.
//
// # Transport
//
// The base URL MUST use https. Plain http is accepted only when
// Config.AllowLoopbackHTTP is set and the host is a loopback address or
// "localhost" (tests, and a service on the same machine in development). The
// client speaks TLS 1.2 or 1.3 only; TLS 1.2 is limited to ECDHE key exchange
// with AEAD ciphers, the same suites the api role's server accepts. The
// server is verified against Config.CAFile when set, else the system roots.
// Config.CertFile and Config.KeyFile give a client certificate for mutual
// TLS; they are read once, in New, so rotating them takes a new Client.
// Redirects are never followed: a 3xx answer is an error, so a redirect
// cannot send personal data to another host or downgrade to http.
//
// # Calls, retries and the circuit breaker
//
// Client.Do sends one JSON request and decodes one JSON answer. Config.Timeout
// bounds the whole call, retries and waits included, on top of any deadline
// of the caller's context. A call is retried at most Config.Retries times,
// and only when the request cannot have been processed or the service asked
// for another try: a failed connection (dial) and the statuses 502, 503 and
// 504 are retried after an exponential backoff with jitter (half the step
// fixed, half random); 429 is retried after the Retry-After the service sent
// (seconds or an HTTP date), or after the backoff when it sent none. A
// Retry-After beyond Config.MaxRetryAfter or beyond the call's deadline ends
// the call at once. Other 4xx and 5xx answers, TLS failures, reset
// connections and timeouts are never retried: the service may have done the
// work, and a client error would fail again.
//
// The circuit breaker counts consecutive failed attempts: transport errors
// other than the caller's own cancellation, any 5xx, an expired
// Config.Timeout, and a 2xx whose body is too large or does not decode as
// JSON into the expected shape. A 4xx answer (the service is up) resets the
// count; 429 and the caller's cancellation leave it as it is. After Config.Breaker.Failures consecutive
// failures the breaker opens: for Config.Breaker.CoolDown every call fails at
// once with ErrUnavailable, without touching the network. The first call
// after the cool-down is a probe (half-open; concurrent calls still get
// ErrUnavailable): its success closes the breaker, its failure opens it for
// another cool-down.
//
// # Personal data
//
// Request and response bodies hold document images, selfies and the fields
// read from identity documents. Nothing here logs or puts into an error a
// body, a header value or a query string: errors and log lines name the
// service, the method, the endpoint path, the attempt, the status code and
// the Go error of the transport or JSON decoder (which quotes at most one
// character of a malformed body and never a value). Every Client is safe for
// concurrent use.
package httpx
