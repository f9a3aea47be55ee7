package ratelimit

import (
	"errors"
	"fmt"
	"math"
)

// ErrUnknownProfile is returned by ProfileByName for a name that is not s, m
// or l.
var ErrUnknownProfile = errors.New("unknown rate limit profile")

// ErrInvalidLimit is wrapped by Profile.Validate for a limit it rejects.
var ErrInvalidLimit = errors.New("invalid rate limit")

// Bounds on a Limit: Rate is in (0, MaxRate] requests per second, and a
// bucket refills from empty within MaxRefill (Burst/Rate seconds).
const (
	MaxRate   = 1e6
	MaxRefill = 1e9 // seconds, about 31 years
)

// Limit is one token bucket's shape: Rate tokens per second refill a bucket
// of Burst tokens; each request takes one.
type Limit struct {
	// Rate is the sustained rate in requests per second, > 0 and at most
	// MaxRate. Fractions are allowed: 0.1 is six a minute.
	Rate float64 `yaml:"rate"`
	// Burst is how many requests may come at once, at least 1 and at most
	// Rate × MaxRefill.
	Burst int `yaml:"burst"`
}

// Profile is a named set of limits, one per class, and the cap on buckets
// held per class.
type Profile struct {
	// Name is s, m or l for the presets.
	Name string
	// Address limits all requests per client address (IPv4 address or IPv6
	// /64), authenticated or not.
	Address Limit
	// Principal limits authenticated requests per tenant and principal.
	Principal Limit
	// SignIn limits sign-in attempts (password and token endpoints) per
	// client address.
	SignIn Limit
	// MaxBuckets caps the buckets held per class, at least 64 (one per
	// shard).
	MaxBuckets int
}

// The presets; see the package documentation for why these numbers.
var profiles = map[string]Profile{
	"s": {
		Name:       "s",
		Address:    Limit{Rate: 20, Burst: 100},
		Principal:  Limit{Rate: 10, Burst: 50},
		SignIn:     Limit{Rate: 0.1, Burst: 10},
		MaxBuckets: 1 << 15,
	},
	"m": {
		Name:       "m",
		Address:    Limit{Rate: 50, Burst: 200},
		Principal:  Limit{Rate: 25, Burst: 100},
		SignIn:     Limit{Rate: 0.2, Burst: 20},
		MaxBuckets: 1 << 17,
	},
	"l": {
		Name:       "l",
		Address:    Limit{Rate: 200, Burst: 800},
		Principal:  Limit{Rate: 100, Burst: 400},
		SignIn:     Limit{Rate: 0.5, Burst: 50},
		MaxBuckets: 1 << 19,
	},
}

// ProfileNames returns the preset names, smallest first.
func ProfileNames() []string { return []string{"s", "m", "l"} }

// ProfileByName returns the preset called name (s, m or l), or an error
// wrapping ErrUnknownProfile.
func ProfileByName(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("%w %q (want s, m or l)", ErrUnknownProfile, name)
	}
	return p, nil
}

// Validate reports every limit of p that New would reject, joined, each
// wrapping ErrInvalidLimit and naming its field.
func (p Profile) Validate() error {
	var errs []error
	for _, c := range classes {
		if err := p.limit(c).validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
		}
	}
	if p.MaxBuckets < shardCount {
		errs = append(errs, fmt.Errorf("%w: maxBuckets %d is below %d", ErrInvalidLimit, p.MaxBuckets, shardCount))
	}
	return errors.Join(errs...)
}

func (l Limit) validate() error {
	var errs []error
	if math.IsNaN(l.Rate) || l.Rate <= 0 || l.Rate > MaxRate {
		errs = append(errs, fmt.Errorf("%w: rate %v is not in (0, %v]", ErrInvalidLimit, l.Rate, float64(MaxRate)))
	}
	switch {
	case l.Burst < 1:
		errs = append(errs, fmt.Errorf("%w: burst %d is below 1", ErrInvalidLimit, l.Burst))
	case len(errs) == 0 && float64(l.Burst)/l.Rate > MaxRefill:
		errs = append(errs, fmt.Errorf("%w: burst %d at rate %v takes more than %v seconds to refill", ErrInvalidLimit, l.Burst, l.Rate, float64(MaxRefill)))
	}
	return errors.Join(errs...)
}

// limit returns p's limit for class c.
func (p Profile) limit(c Class) Limit {
	switch c {
	case Address:
		return p.Address
	case Principal:
		return p.Principal
	default:
		return p.SignIn
	}
}
