package httpx

import (
	"sync"
	"time"
)

// State is a circuit breaker state.
type State int

// The breaker states.
const (
	// Closed lets every call through.
	Closed State = iota
	// Open fails every call with ErrUnavailable until the cool-down ends.
	Open
	// HalfOpen lets one probe call through; the others fail with
	// ErrUnavailable.
	HalfOpen
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// outcome is what an attempt tells the breaker.
type outcome int

const (
	// success: the service answered as a service should (2xx, most 4xx).
	success outcome = iota
	// failure: the service is down, broken or too slow.
	failure
	// neutral: nothing learned (the caller gave up, or 429).
	neutral
)

// breaker is a consecutive-failure circuit breaker with a half-open probe.
type breaker struct {
	failures int
	coolDown time.Duration
	now      func() time.Time
	// onChange is called, outside the lock, when the state changes.
	onChange func(from, to State)

	mu          sync.Mutex
	state       State
	consecutive int
	openUntil   time.Time
	probing     bool
}

// allow reports whether an attempt may go out. When it returns true the
// caller MUST report the attempt's outcome to done.
func (b *breaker) allow() bool {
	b.mu.Lock()
	from := b.state
	ok := false
	switch b.state {
	case Closed:
		ok = true
	case Open:
		if !b.now().Before(b.openUntil) {
			b.state = HalfOpen
			b.probing = true
			ok = true
		}
	case HalfOpen:
		if !b.probing {
			b.probing = true
			ok = true
		}
	}
	to := b.state
	b.mu.Unlock()
	b.changed(from, to)
	return ok
}

// done records the outcome of an attempt that allow let through.
func (b *breaker) done(o outcome) {
	b.mu.Lock()
	from := b.state
	switch o {
	case success:
		b.consecutive = 0
		b.state = Closed
		b.probing = false
	case failure:
		b.consecutive++
		if b.state == HalfOpen || b.consecutive >= b.failures {
			b.state = Open
			b.openUntil = b.now().Add(b.coolDown)
			b.probing = false
		}
	case neutral:
		if b.state == HalfOpen {
			b.probing = false
		}
	}
	to := b.state
	b.mu.Unlock()
	b.changed(from, to)
}

// current returns the state, moving an open breaker whose cool-down has
// ended to half-open.
func (b *breaker) current() State {
	b.mu.Lock()
	from := b.state
	if b.state == Open && !b.now().Before(b.openUntil) {
		b.state = HalfOpen
		b.probing = false
	}
	to := b.state
	b.mu.Unlock()
	b.changed(from, to)
	return to
}

func (b *breaker) changed(from, to State) {
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
}
