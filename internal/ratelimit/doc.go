// Package ratelimit limits request rates per client address, per
// authenticated principal and, more strictly, per address for sign-in
// attempts, with named profiles (s, m, l) sized for small, medium and large
// deployments.
//
// # Algorithm
//
// Each (class, key) pair has a token bucket of Limit.Burst tokens refilled
// at Limit.Rate tokens per second; a request takes one token or is refused
// with the time until the next token. The bucket is stored as a single
// timestamp, the generic cell rate algorithm's theoretical arrival time
// (GCRA, ITU-T I.371), which is exactly a token bucket: a bucket whose
// timestamp is not after now is full. A refused request takes nothing, so a
// client that waits Retry-After is served.
//
// A full bucket is the same as no bucket, so removing one loses nothing.
// Buckets live in 64 shards per class, each a map under its own mutex. The
// first Allow to reach a shard after SweepInterval has passed since its
// last sweep removes the shard's full buckets (O(shard size), on that
// request). A shard holds at most ceil(Profile.MaxBuckets/64) buckets: a
// new key in a full shard evicts, of 8 buckets sampled at a random place,
// the one closest to full. Memory is therefore bounded by MaxBuckets per
// class however many keys an attacker rotates through: at most about 54
// bytes a bucket with Go 1.26 maps, as TestMemoryBound measures. Since a Go
// map never gives memory back, a shard's map is reallocated after as many
// evictions as its cap (a churned map would otherwise grow to about twice
// its size) and after a sweep that leaves a quarter of its high-water mark
// (so the memory is returned after a flood). Eviction can hand an evicted
// key a fresh burst: the bound on memory is bought with that, and the
// choice of the bucket closest to full makes it fall on the keys that had
// least left to lose.
//
// Keys are 16 bytes: an IPv4 address, an IPv6 /64 prefix (one subscriber's
// allocation; rotating addresses inside it does not help), or a 128-bit
// keyed hash of tenant and principal id (maphash under two per-process
// random seeds; a collision would merge two principals' buckets and needs
// about 2^64 principals).
//
// A Limiter is in memory and per process: with N API replicas behind a load
// balancer, a client gets up to N times the configured rates. The profiles'
// numbers are per replica.
//
// # Client addresses
//
// ClientIP takes the address from the connection unless the connection
// comes from a configured trusted proxy; only then does it read
// X-Forwarded-For, from the right, skipping trusted proxies, and take the
// first address it does not trust. Entries left of that one were written by
// the client and are never believed, so a client cannot choose its key by
// sending the header. With no trusted proxies configured the header is
// ignored altogether. The Forwarded header (RFC 7239) is not read.
//
// # Threat model
//
// Rate limits are a cost control, not an authentication control. They
// address:
//
//   - Credential stuffing and password guessing from one source: the SignIn
//     class allows a few sign-in attempts per address per minute, whatever
//     the usernames, which also caps password spraying (one password across
//     many usernames) that the per-username lockout of package identity
//     does not see. Callers take the SignIn token before checking the
//     password, so it also bounds the argon2id work one address can cause.
//   - Enumeration (probing session, file or user ids; testing which
//     usernames exist): bounded per address and per principal, so a leaked
//     API key cannot be used to walk a tenant's records quickly.
//   - Resource exhaustion by one client or credential: image uploads and
//     decodes, database queries and audit writes are bounded per address
//     and per principal, so one noisy integration cannot starve the others.
//   - Memory exhaustion of the limiter itself: the bucket cap above.
//
// They do not stop, and other layers must:
//
//   - Distributed attacks from many addresses (botnets, residential
//     proxies, many IPv6 /64s): each address gets its own budget. The
//     per-username lockout, strong passwords, TOTP and monitoring of
//     auth.failure audit events are the defences.
//   - Volumetric floods: the process still accepts the connection, reads
//     the headers and answers 429; a network-level limiter or CDN in front
//     is needed for those.
//   - Slow attacks within the limits (low-and-slow guessing): the limits
//     only set the speed.
//   - Attacks from behind a shared address, which also limit the innocent
//     users of that address (carrier-grade NAT, corporate proxies): that is
//     the price of per-address limits, and why the l profile is generous.
//   - A misconfigured trusted proxy list: trusting a network that clients
//     can send from lets them choose their address. Trust only the reverse
//     proxies' own addresses.
//
// # Profiles
//
// The names s, m and l follow the profiles Regula's IDV platform is
// configured with; Regula's numbers are not public, so the numbers here are
// idvault's own, chosen as follows (per replica):
//
//	profile  address      principal    sign-in              max buckets
//	         rate, burst  rate, burst  rate, burst          per class
//	s        20/s, 100    10/s, 50     6/min (0.1/s), 10    32 768 (~2 MiB)
//	m        50/s, 200    25/s, 100    12/min (0.2/s), 20   131 072 (~7 MiB)
//	l        200/s, 800   100/s, 400   30/min (0.5/s), 50   524 288 (~28 MiB)
//
// s is a single small deployment: one tenant, a few operators, one
// integration, thousands of verifications a day on a small machine. m is a
// few tenants and tens of operators on a few replicas. l is many tenants
// with consumer-facing capture, where many phones share one carrier-grade
// NAT address and integrations send hundreds of requests a second.
//
// The address limit is the coarse per-source cap and is above the principal
// limit, so one integration server can use its whole principal budget and
// still leave room for others behind the same address. Its burst covers an
// operator console page load and a capture-page upload sequence. The
// principal limit is the per-credential fairness bound; its burst lets a
// batch job start quickly. The sign-in limit lets a person mistype a
// password several times and an office sign in together in the morning,
// while holding one address to 8 640 (s) to 43 200 (l) attempts a day; the
// per-username lockout limits each account far more tightly.
//
// MaxBuckets only matters under a flood of new keys. A client's bucket is
// full again, and may be dropped, at most Burst/Rate after its last request
// (4 to 5 s for the address limit, 100 s for sign-in), so the buckets needed at
// once are about the clients active in that window, far below the caps.
// Under a flood, eviction keeps an exhausted bucket (that of an attacker
// already being refused) and drops those closest to full, so an attacker
// cannot flush its own bucket by rotating keys unless it first exhausts
// most of the other buckets in its shard. The caps keep the limiter's worst
// case a small part of the deployment's memory; the Principal class cannot
// be flooded from outside, since its keys need valid credentials.
package ratelimit
