package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the tests' injected clock start, deliberately before any real
// epoch, so that negative offsets are exercised too.
var t0 = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// testProfile has one distinct limit per class, easy to reason about.
var testProfile = Profile{
	Name:       "test",
	Address:    Limit{Rate: 10, Burst: 5},  // a token every 100ms
	Principal:  Limit{Rate: 2, Burst: 3},   // a token every 500ms
	SignIn:     Limit{Rate: 0.1, Burst: 2}, // a token every 10s
	MaxBuckets: 1 << 12,
}

func newLimiter(t testing.TB, p Profile) *Limiter {
	t.Helper()
	l, err := New(p)
	if err != nil {
		t.Fatalf("New(%+v) = %v", p, err)
	}
	return l
}

func addr(s string) Key { return AddrKey(netip.MustParseAddr(s)) }

// TestBurstThenDeny takes each class's burst at one instant, then checks
// that the next request is refused with exactly one refill interval to
// wait, and that a refused request takes nothing.
func TestBurstThenDeny(t *testing.T) {
	tests := []struct {
		class Class
		key   Key
		burst int
		wait  time.Duration
	}{
		{Address, addr("192.0.2.1"), 5, 100 * time.Millisecond},
		{Principal, PrincipalKey("t1", "u1"), 3, 500 * time.Millisecond},
		{SignIn, addr("2001:db8::1"), 2, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.class.String(), func(t *testing.T) {
			l := newLimiter(t, testProfile)
			for i := range tt.burst {
				if ok, ra := l.Allow(tt.key, tt.class, t0); !ok || ra != 0 {
					t.Fatalf("Allow #%d = %v, %v, want true, 0", i+1, ok, ra)
				}
			}
			for i := range 3 {
				ok, ra := l.Allow(tt.key, tt.class, t0)
				if ok || ra != tt.wait {
					t.Fatalf("Allow after burst, try %d = %v, %v, want false, %v", i+1, ok, ra, tt.wait)
				}
			}
			// Part way through the wait, the wait shrinks accordingly.
			if ok, ra := l.Allow(tt.key, tt.class, t0.Add(tt.wait/4)); ok || ra != tt.wait-tt.wait/4 {
				t.Fatalf("Allow at +wait/4 = %v, %v, want false, %v", ok, ra, tt.wait-tt.wait/4)
			}
			if ok, _ := l.Allow(tt.key, tt.class, t0.Add(tt.wait)); !ok {
				t.Fatalf("Allow at +wait = false, want true")
			}
			if ok, ra := l.Allow(tt.key, tt.class, t0.Add(tt.wait)); ok || ra != tt.wait {
				t.Fatalf("second Allow at +wait = %v, %v, want false, %v", ok, ra, tt.wait)
			}
		})
	}
}

// TestRefill checks the sustained rate: after the burst, exactly one
// request per interval is allowed, and an idle bucket refills to the burst
// and no further.
func TestRefill(t *testing.T) {
	l := newLimiter(t, testProfile)
	k := addr("198.51.100.7")
	now := t0
	allowed := 0
	// 10 seconds at 1ms steps, [0, 10s): the burst of 5 at the start, then
	// one every 100ms from 100ms to 9.9s.
	for range 10000 {
		if ok, _ := l.Allow(k, Address, now); ok {
			allowed++
		}
		now = now.Add(time.Millisecond)
	}
	if want := 5 + 99; allowed != want {
		t.Errorf("allowed over 10s at 10/s burst 5 = %d, want %d", allowed, want)
	}
	// An hour idle refills to the burst, not beyond.
	now = now.Add(time.Hour)
	allowed = 0
	for range 20 {
		if ok, _ := l.Allow(k, Address, now); ok {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("allowed after an idle hour = %d, want the burst 5", allowed)
	}
}

// TestIndependence exhausts one (class, key) bucket and checks that other
// keys in the class and the same key in other classes are untouched.
func TestIndependence(t *testing.T) {
	l := newLimiter(t, testProfile)
	k := addr("203.0.113.9")
	for range 5 {
		l.Allow(k, Address, t0)
	}
	if ok, _ := l.Allow(k, Address, t0); ok {
		t.Fatal("Allow(k, Address) after burst = true, want false")
	}
	tests := []struct {
		name  string
		key   Key
		class Class
	}{
		{"same key, sign-in", k, SignIn},
		{"same bytes, principal", k, Principal},
		{"next address", addr("203.0.113.10"), Address},
		{"other principal", PrincipalKey("t", "a"), Principal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, _ := l.Allow(tt.key, tt.class, t0); !ok {
				t.Errorf("Allow(%v, %v) = false, want true", tt.key, tt.class)
			}
		})
	}
}

// TestAddrKey checks the grouping: IPv4 by address, IPv6 by /64, mapped
// IPv4 as IPv4, zones ignored, invalid addresses together and apart from
// every real key.
func TestAddrKey(t *testing.T) {
	tests := []struct {
		name string
		a, b string // "" is the invalid address
		same bool
	}{
		{"v4 same", "192.0.2.1", "192.0.2.1", true},
		{"v4 neighbours", "192.0.2.1", "192.0.2.2", false},
		{"v6 same /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"v6 next /64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"v6 zone ignored", "fe80::1%eth0", "fe80::2%eth1", true},
		{"mapped v4 is v4", "::ffff:192.0.2.1", "192.0.2.1", true},
		{"mapped v4 not grouped", "::ffff:192.0.2.1", "::ffff:192.0.2.2", false},
		{"invalid together", "", "", true},
		{"invalid apart from ::", "", "::", false},
		{"invalid apart from ::1", "", "::1", false},
		{"invalid apart from 0.0.0.0", "", "0.0.0.0", false},
		{"invalid apart from 0.0.0.255", "", "0.0.0.255", false},
		{"v4 apart from v6 ::c000:201", "192.0.2.1", "::c000:201", false},
	}
	parse := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AddrKey(parse(tt.a)) == AddrKey(parse(tt.b)); got != tt.same {
				t.Errorf("AddrKey(%q) == AddrKey(%q) = %v, want %v", tt.a, tt.b, got, tt.same)
			}
		})
	}
}

// TestIPv6Grouping checks that rotating addresses inside one /64 does not
// escape the limit.
func TestIPv6Grouping(t *testing.T) {
	l := newLimiter(t, testProfile)
	for i := range 2 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
		if ok, _ := l.Allow(AddrKey(a), SignIn, t0); !ok {
			t.Fatalf("Allow(%v) = false, want true within burst", a)
		}
	}
	if ok, _ := l.Allow(AddrKey(netip.MustParseAddr("2001:db8::ffff:1234")), SignIn, t0); ok {
		t.Error("Allow from a third address in the same /64 = true, want false")
	}
	if ok, _ := l.Allow(AddrKey(netip.MustParseAddr("2001:db8:0:1::1")), SignIn, t0); !ok {
		t.Error("Allow from the next /64 = false, want true")
	}
}

// TestPrincipalKey checks that tenant and id are both part of the key and
// cannot be traded against each other.
func TestPrincipalKey(t *testing.T) {
	tests := []struct {
		name           string
		t1, i1, t2, i2 string
		same           bool
	}{
		{"same", "tenant", "user", "tenant", "user", true},
		{"other id", "tenant", "user", "tenant", "user2", false},
		{"other tenant", "tenant", "user", "tenant2", "user", false},
		{"boundary shifted", "ab", "c", "a", "bc", false},
		{"empty tenant", "", "abc", "abc", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrincipalKey(tt.t1, tt.i1) == PrincipalKey(tt.t2, tt.i2); got != tt.same {
				t.Errorf("PrincipalKey(%q, %q) == PrincipalKey(%q, %q) = %v, want %v", tt.t1, tt.i1, tt.t2, tt.i2, got, tt.same)
			}
		})
	}
}

// sweepAll sweeps every shard of every class at now, as Allow does for one
// shard once per SweepInterval.
func sweepAll(l *Limiter, now time.Time) {
	t := int64(now.Sub(l.epoch))
	for c := range l.classes {
		for i := range l.classes[c].shards {
			s := &l.classes[c].shards[i]
			s.mu.Lock()
			s.sweep(t)
			s.mu.Unlock()
		}
	}
}

// keyN returns a distinct IPv6 /64 key for each n, as an attacker with a
// large allocation rotating prefixes would present.
func keyN(n int) Key {
	var b [16]byte
	b[0], b[1] = 0x20, 0x01
	b[4], b[5], b[6], b[7] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return AddrKey(netip.AddrFrom16(b))
}

// TestMemoryBound sends 1e6 distinct keys (each used once, so no bucket is
// full and a sweep can remove none) and checks that the buckets held never
// exceed MaxBuckets, that the heap stays within a bound, and that after
// the buckets refill a sweep removes them all and returns the memory.
func TestMemoryBound(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	p := testProfile
	p.MaxBuckets = 1 << 16
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	l := newLimiter(t, p)
	for i := range n {
		// All at one instant: nothing refills, so only the cap bounds memory.
		if ok, _ := l.Allow(keyN(i), SignIn, t0); !ok {
			t.Fatalf("Allow(new key %d) = false, want true", i)
		}
	}
	if got := l.Len(); got > p.MaxBuckets || got < p.MaxBuckets*9/10 {
		t.Errorf("Len after %d distinct keys = %d, want at most (and near) MaxBuckets %d", n, got, p.MaxBuckets)
	}
	var full runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&full)
	perBucket := float64(int64(full.HeapAlloc)-int64(before.HeapAlloc)) / float64(p.MaxBuckets)
	t.Logf("%d distinct keys: %d buckets held, heap %.1f bytes per bucket", n, l.Len(), perBucket)
	if perBucket > 64 {
		t.Errorf("heap per bucket = %.1f bytes, want at most 64", perBucket)
	}

	// The most recent key is still limited: its bucket was not evicted.
	if ok, _ := l.Allow(keyN(n-1), SignIn, t0); !ok {
		t.Errorf("Allow(last key, second try) = false, want true (burst 2)")
	}
	if ok, _ := l.Allow(keyN(n-1), SignIn, t0); ok {
		t.Errorf("Allow(last key, third try) = true, want false")
	}

	// Once every bucket is full again, a sweep removes them all.
	later := t0.Add(time.Duration(float64(p.SignIn.Burst)/p.SignIn.Rate) * time.Second)
	sweepAll(l, later)
	if got := l.Len(); got != 0 {
		t.Errorf("Len after sweep at full refill = %d, want 0", got)
	}
	var swept runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&swept)
	t.Logf("heap after sweep: %d bytes above start (was %d)", int64(swept.HeapAlloc)-int64(before.HeapAlloc), int64(full.HeapAlloc)-int64(before.HeapAlloc))
	if int64(swept.HeapAlloc)-int64(before.HeapAlloc) > (int64(full.HeapAlloc)-int64(before.HeapAlloc))/4 {
		t.Errorf("heap after sweep = %d bytes above start, want under a quarter of the full %d", int64(swept.HeapAlloc)-int64(before.HeapAlloc), int64(full.HeapAlloc)-int64(before.HeapAlloc))
	}
	runtime.KeepAlive(l)
}

// TestSweepOnAllow checks that Allow itself sweeps a shard, once
// SweepInterval has passed since its last sweep, without any other call.
func TestSweepOnAllow(t *testing.T) {
	l := newLimiter(t, testProfile)
	for i := range 1000 {
		l.Allow(keyN(i), Address, t0) // full again at t0+100ms
	}
	// Within the interval nothing is swept, though every bucket is full.
	soon := t0.Add(SweepInterval / 2)
	l.Allow(keyN(1000), Address, soon)
	if got := l.Len(); got != 1001 {
		t.Fatalf("Len within the interval = %d, want 1001", got)
	}
	// After it, one Allow sweeps its own shard and no other.
	later := t0.Add(SweepInterval)
	s := l.shard(Address, keyN(0))
	s.mu.Lock()
	inShard := len(s.m)
	s.mu.Unlock()
	l.Allow(keyN(0), Address, later)
	if got, want := l.Len(), 1001-inShard+1; got != want {
		t.Errorf("Len after one Allow past the interval = %d, want %d (its shard of %d swept, its own bucket added)", got, want, inShard)
	}
}

// TestAllowNoAllocs checks that Allow does not allocate once a key's bucket
// exists.
func TestAllowNoAllocs(t *testing.T) {
	l := newLimiter(t, testProfile)
	k := PrincipalKey("tenant", "principal")
	now := t0
	if got := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		l.Allow(k, Principal, now)
	}); got != 0 {
		t.Errorf("Allow allocations per run = %v, want 0", got)
	}
}

// TestEvictionPrefersFullest fills a one-bucket-per-shard limiter and
// checks that a newcomer evicts the bucket closest to full rather than an
// exhausted one.
func TestEvictionPrefersFullest(t *testing.T) {
	p := testProfile
	p.MaxBuckets = shardCount * sampleSize // every shard samples all it holds
	l := newLimiter(t, p)
	// Find sampleSize+1 keys in one shard.
	target := l.shard(SignIn, keyN(0))
	var keys []Key
	for i := 0; len(keys) < sampleSize+1; i++ {
		if l.shard(SignIn, keyN(i)) == target {
			keys = append(keys, keyN(i))
		}
	}
	// keys[0] is exhausted; keys[1..] are used once at a later time, so
	// keys[1] (earliest of those) is closest to full.
	for range p.SignIn.Burst {
		l.Allow(keys[0], SignIn, t0)
	}
	for i := 1; i < sampleSize; i++ {
		l.Allow(keys[i], SignIn, t0.Add(time.Duration(i)*time.Second))
	}
	l.Allow(keys[sampleSize], SignIn, t0.Add(sampleSize*time.Second))
	if ok, _ := l.Allow(keys[0], SignIn, t0.Add(sampleSize*time.Second)); ok {
		t.Error("exhausted key allowed after a newcomer arrived: its bucket was evicted, want the fullest evicted")
	}
}

// TestConcurrent runs many goroutines against shared keys at one instant:
// exactly the burst of each key is allowed, however the calls interleave.
// Run with -race.
func TestConcurrent(t *testing.T) {
	l := newLimiter(t, testProfile)
	const goroutines, keys, tries = 8, 16, 200
	var allowed [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range tries {
				k := (g + i) % keys
				if ok, _ := l.Allow(addr(fmt.Sprintf("192.0.2.%d", k)), Address, t0); ok {
					allowed[k].Add(1)
				}
				l.Allow(PrincipalKey("t", fmt.Sprint(i)), Principal, t0.Add(time.Duration(i)*time.Millisecond))
			}
		})
	}
	wg.Wait()
	for k := range allowed {
		if got := allowed[k].Load(); got != int64(testProfile.Address.Burst) {
			t.Errorf("key %d allowed %d times, want the burst %d", k, got, testProfile.Address.Burst)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{0, 1},
		{time.Nanosecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{10 * time.Second, 10},
		{-time.Second, 1},
		{time.Duration(1<<63 - 1), (1<<63-1)/int64(time.Second) + 1},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := RetryAfterSeconds(tt.d); got != tt.want {
				t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tt.d, got, tt.want)
			}
		})
	}
}

func TestProfiles(t *testing.T) {
	for _, name := range ProfileNames() {
		t.Run(name, func(t *testing.T) {
			p, err := ProfileByName(name)
			if err != nil {
				t.Fatalf("ProfileByName(%q) = %v", name, err)
			}
			if err := p.Validate(); err != nil {
				t.Errorf("ProfileByName(%q).Validate() = %v, want nil", name, err)
			}
			if p.Name != name {
				t.Errorf("ProfileByName(%q).Name = %q", name, p.Name)
			}
			if p.Address.Rate < p.Principal.Rate || p.Address.Burst < p.Principal.Burst {
				t.Errorf("profile %s: address limit %+v below principal limit %+v", name, p.Address, p.Principal)
			}
			if p.SignIn.Rate >= p.Principal.Rate {
				t.Errorf("profile %s: sign-in rate %v not stricter than principal rate %v", name, p.SignIn.Rate, p.Principal.Rate)
			}
		})
	}
	if _, err := ProfileByName("xl"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf(`ProfileByName("xl") = %v, want ErrUnknownProfile`, err)
	}
}

func TestValidate(t *testing.T) {
	ok := testProfile
	tests := []struct {
		name   string
		modify func(*Profile)
		fields []string // substrings every one of which the error must name
	}{
		{"valid", func(*Profile) {}, nil},
		{"zero rate", func(p *Profile) { p.Address.Rate = 0 }, []string{"address: invalid rate limit: rate 0"}},
		{"negative rate", func(p *Profile) { p.SignIn.Rate = -1 }, []string{"signIn: invalid rate limit: rate -1"}},
		{"rate too high", func(p *Profile) { p.Principal.Rate = 2e6 }, []string{"principal: invalid rate limit: rate 2e+06"}},
		{"zero burst", func(p *Profile) { p.Principal.Burst = 0 }, []string{"principal: invalid rate limit: burst 0"}},
		{"refill too slow", func(p *Profile) { p.SignIn = Limit{Rate: 1e-9, Burst: 2} }, []string{"signIn: invalid rate limit: burst 2 at rate 1e-09"}},
		{"too few buckets", func(p *Profile) { p.MaxBuckets = 10 }, []string{"maxBuckets 10"}},
		{"all at once", func(p *Profile) { *p = Profile{} }, []string{"address:", "principal:", "signIn:", "maxBuckets 0", "burst 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.modify(&p)
			err := p.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("Validate() = %v, want ErrInvalidLimit", err)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("Validate() = %q, want it to mention %q", err, f)
				}
			}
			if _, nerr := New(p); !errors.Is(nerr, ErrInvalidLimit) {
				t.Errorf("New(invalid) = %v, want ErrInvalidLimit", nerr)
			}
		})
	}
}

func BenchmarkAllow(b *testing.B) {
	p, err := ProfileByName("m")
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = keyN(i)
	}
	b.Run("serial", func(b *testing.B) {
		l := newLimiter(b, p)
		now := t0
		i := 0
		for b.Loop() {
			now = now.Add(time.Microsecond)
			l.Allow(keys[i&1023], Address, now)
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := newLimiter(b, p)
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) * 7919
			now := t0
			for pb.Next() {
				now = now.Add(time.Microsecond)
				l.Allow(keys[i&1023], Address, now)
				i++
			}
		})
	})
	b.Run("newKeysAtCap", func(b *testing.B) {
		q := p
		q.MaxBuckets = 1 << 12
		l := newLimiter(b, q)
		i := 0
		for b.Loop() {
			l.Allow(keyN(i), SignIn, t0)
			i++
		}
	})
}

func BenchmarkKeys(b *testing.B) {
	a := netip.MustParseAddr("2001:db8:1:2:3:4:5:6")
	b.Run("AddrKey", func(b *testing.B) {
		for b.Loop() {
			AddrKey(a)
		}
	})
	b.Run("PrincipalKey", func(b *testing.B) {
		for b.Loop() {
			PrincipalKey("0b6f8c8e-3f4d-4a51-9a57-3f2b1c9d8e7f", "f3c1a2b4-5d6e-4f70-8192-a3b4c5d6e7f8")
		}
	})
}
