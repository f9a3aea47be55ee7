package ratelimit

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Class selects which of a Profile's limits applies to a request.
type Class uint8

// The classes. Address and SignIn take keys from AddrKey, Principal from
// PrincipalKey; each class has its own buckets, so the same key in two
// classes is counted twice, independently.
const (
	// Address is every request, by client address.
	Address Class = iota
	// Principal is every authenticated request, by tenant and principal.
	Principal
	// SignIn is every sign-in attempt, by client address.
	SignIn
	numClasses
)

var classes = [numClasses]Class{Address, Principal, SignIn}

// String returns the class's configuration key: address, principal or
// signIn.
func (c Class) String() string {
	switch c {
	case Address:
		return "address"
	case Principal:
		return "principal"
	case SignIn:
		return "signIn"
	default:
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
}

const (
	// shardCount is the number of shards per class, a power of two.
	shardCount = 64
	// sampleSize is how many buckets a full shard samples to evict one.
	sampleSize = 8
	// shrinkFloor is the high-water mark below which a shard's map is
	// never reallocated after a sweep.
	shrinkFloor = 256
)

// SweepInterval is the least time between two sweeps of one shard, in
// which every full bucket is removed.
const SweepInterval = time.Minute

// Key identifies who a bucket belongs to within a class. Build it with
// AddrKey or PrincipalKey; the zero Key is a valid key of its own.
type Key struct {
	b [16]byte
}

// invalidAddrKey is the key of an invalid address. Byte 15 is set and bytes
// 10 and 11 are clear, so it equals neither an IPv6 /64 key (low 8 bytes
// clear) nor an IPv4 key (IPv4-mapped, bytes 10 and 11 set).
var invalidAddrKey = Key{b: [16]byte{15: 0xff}}

// AddrKey returns the key of client address a: the address itself for IPv4
// (and IPv4-mapped IPv6), its /64 prefix for IPv6, ignoring any zone. Every
// invalid address (a peer whose address could not be read) maps to one
// shared key, so such requests are limited together rather than not at all.
func AddrKey(a netip.Addr) Key {
	if !a.IsValid() {
		return invalidAddrKey
	}
	a = a.Unmap()
	b := a.As16()
	if !a.Is4() {
		clear(b[8:])
	}
	return Key{b: b}
}

// principalSeeds key the 128-bit principal hash; they are random per
// process, so an outsider cannot choose principals whose keys collide.
var principalSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// PrincipalKey returns the key of principal id in tenant: a 128-bit keyed
// hash of both (two maphash sums under independent random seeds), so a key
// is 16 bytes however long the ids. Distinct (tenant, id) pairs collide
// with negligible probability (about n²/2^129 for n principals).
func PrincipalKey(tenant, id string) Key {
	var k Key
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(tenant)))
	for i, seed := range principalSeeds {
		var h maphash.Hash
		h.SetSeed(seed)
		_, _ = h.Write(n[:])
		_, _ = h.WriteString(tenant)
		_, _ = h.WriteString(id)
		binary.LittleEndian.PutUint64(k.b[i*8:], h.Sum64())
	}
	return k
}

// Limiter holds the token buckets of one Profile. It is safe for concurrent
// use; it starts no goroutines and needs no Close. Its memory is bounded by
// Profile.MaxBuckets buckets per class (see the package documentation).
type Limiter struct {
	epoch   time.Time
	seed    maphash.Seed
	classes [numClasses]classState
}

// classState is one class's limit and buckets.
type classState struct {
	// interval is the time one token takes to refill, in nanoseconds.
	interval int64
	// tau is how far a bucket's theoretical arrival time may run ahead of
	// now and still admit a request: (burst-1) intervals.
	tau      int64
	shardCap int
	shards   [shardCount]shard
}

// shard is one map of buckets under its mutex. A bucket is the theoretical
// arrival time of the next request, in nanoseconds since Limiter.epoch; a
// bucket whose time is not after now is full.
type shard struct {
	mu sync.Mutex
	m  map[[16]byte]int64
	// peak is the largest len(m) since m was allocated.
	peak int
	// evicted counts evictions since m was allocated.
	evicted int
	// nextSweep is when the shard is next swept.
	nextSweep int64
	_         [24]byte // keeps shards on separate cache lines
}

// New returns a Limiter for p, or an error (from p.Validate) when a limit is
// invalid.
func New(p Profile) (*Limiter, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{epoch: time.Now(), seed: maphash.MakeSeed()}
	for _, c := range classes {
		lim := p.limit(c)
		cs := &l.classes[c]
		cs.interval = max(int64(math.Round(float64(time.Second)/lim.Rate)), 1)
		cs.tau = int64(lim.Burst-1) * cs.interval
		cs.shardCap = (p.MaxBuckets + shardCount - 1) / shardCount
		for i := range cs.shards {
			cs.shards[i].m = make(map[[16]byte]int64)
			cs.shards[i].nextSweep = math.MinInt64
		}
	}
	return l, nil
}

// Allow takes one token from the bucket of key in class at time now. It
// returns true if the request may proceed; otherwise false and how long
// until a token is available (always > 0). A refused request takes no
// token. now is the caller's clock (time.Now in production, so that the
// monotonic reading is used); it should not run backwards, and a bucket
// only refills as now advances. class MUST be Address, Principal or SignIn;
// any other value panics.
func (l *Limiter) Allow(key Key, class Class, now time.Time) (ok bool, retryAfter time.Duration) {
	cs := &l.classes[class]
	t := int64(now.Sub(l.epoch))
	s := l.shard(class, key)
	s.mu.Lock()
	if t >= s.nextSweep {
		s.sweep(t)
		s.nextSweep = t + int64(SweepInterval)
	}
	tat, found := s.m[key.b]
	switch {
	case !found:
		if len(s.m) >= cs.shardCap {
			s.evictOne(cs.shardCap)
		}
		tat = t
	case tat < t:
		tat = t
	}
	if tat-t > cs.tau {
		s.mu.Unlock()
		return false, time.Duration(tat - cs.tau - t)
	}
	s.m[key.b] = tat + cs.interval
	s.peak = max(s.peak, len(s.m))
	s.mu.Unlock()
	return true, 0
}

// shard returns the shard that holds key's bucket in class.
func (l *Limiter) shard(class Class, key Key) *shard {
	return &l.classes[class].shards[maphash.Comparable(l.seed, key.b)&(shardCount-1)]
}

// Len returns the number of buckets held, over all classes. It is meant for
// metrics; it locks each shard in turn, so the sum is not a snapshot.
func (l *Limiter) Len() int {
	n := 0
	for c := range l.classes {
		for i := range l.classes[c].shards {
			s := &l.classes[c].shards[i]
			s.mu.Lock()
			n += len(s.m)
			s.mu.Unlock()
		}
	}
	return n
}

// sweep removes every bucket that is full at t, and reallocates the map
// when it has shrunk to a quarter of its high-water mark, since a Go map
// does not release memory on delete. s.mu must be held.
func (s *shard) sweep(t int64) {
	for k, tat := range s.m {
		if tat <= t {
			delete(s.m, k)
		}
	}
	if s.peak >= shrinkFloor && len(s.m) <= s.peak/4 {
		s.realloc()
	}
}

// realloc copies the buckets into a new map sized for them, dropping the
// old map's unused capacity and deleted slots. s.mu must be held.
func (s *shard) realloc() {
	m := make(map[[16]byte]int64, len(s.m))
	for k, tat := range s.m {
		m[k] = tat
	}
	s.m, s.peak, s.evicted = m, len(m), 0
}

// evictOne removes, of up to sampleSize buckets in map iteration order
// (which starts at a random place), the one with the earliest theoretical
// arrival time: the one closest to full, whose loss gives its key the least
// extra. After capacity evictions it reallocates the map: deleted slots
// of a Go map are reused only in part, and a map under constant churn
// would otherwise grow to about twice its size. s.mu must be held and s.m
// must not be empty.
func (s *shard) evictOne(capacity int) {
	var victim [16]byte
	oldest, n := int64(math.MaxInt64), 0
	for k, tat := range s.m {
		if tat <= oldest {
			victim, oldest = k, tat
		}
		if n++; n == sampleSize {
			break
		}
	}
	delete(s.m, victim)
	if s.evicted++; s.evicted >= capacity {
		s.realloc()
	}
}

// RetryAfterSeconds returns d as a Retry-After value: whole seconds, rounded
// up, at least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return max(s, 1)
}
