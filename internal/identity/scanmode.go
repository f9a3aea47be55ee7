package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/idvault/idvault/internal/store"
)

// Scan mode lets an approved security scanner reach a tenant's sign-in
// surface without acknowledging the sign-in banner, only while an admin has
// switched it on, until its expiry, and (optionally) only from given address
// ranges. It is off by default.

// CollSettings holds tenant settings such as scan mode.
const CollSettings = "settings"

// MaxScanWindow is the longest scan mode may be switched on for at once.
const MaxScanWindow = 24 * time.Hour

// ScanMode is a tenant's scan-mode setting.
type ScanMode struct {
	Enabled   bool      `json:"enabled"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// Sources limits scan mode to these address ranges; empty means any.
	Sources []string  `json:"sourceRanges"`
	SetBy   string    `json:"setBy,omitempty"`
	SetAt   time.Time `json:"setAt,omitzero"`
}

// ErrScanMode means a scan-mode setting is invalid.
var ErrScanMode = errors.New("identity: invalid scan mode")

// Allows reports whether scan mode lets addr sign in without the banner at
// now.
func (m ScanMode) Allows(addr netip.Addr, now time.Time) bool {
	if !m.Enabled || !now.Before(m.ExpiresAt) {
		return false
	}
	if len(m.Sources) == 0 {
		return true
	}
	for _, s := range m.Sources {
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// ScanMode returns tenant's scan-mode setting (off when never set).
func (s *Service) ScanMode(ctx context.Context, tenant string) (ScanMode, error) {
	v, err := s.view(tenant)
	if err != nil {
		return ScanMode{}, err
	}
	var m ScanMode
	_, err = v.Get(ctx, CollSettings, "scanmode", &m)
	if errors.Is(err, store.ErrNotFound) {
		return ScanMode{Sources: []string{}}, nil
	}
	return m, err
}

// SetScanMode switches tenant's scan mode on (until expiresAt, at most
// MaxScanWindow ahead, from sources if any) or off, as principal by.
func (s *Service) SetScanMode(ctx context.Context, tenant string, m ScanMode, by string) (ScanMode, error) {
	now := s.now().UTC()
	if m.Sources == nil {
		m.Sources = []string{}
	}
	for i, src := range m.Sources {
		p, err := netip.ParsePrefix(src)
		if err != nil {
			return ScanMode{}, fmt.Errorf("%w: source range %d is not a CIDR prefix", ErrScanMode, i)
		}
		m.Sources[i] = p.Masked().String()
	}
	if m.Enabled {
		if !m.ExpiresAt.After(now) || m.ExpiresAt.After(now.Add(MaxScanWindow)) {
			return ScanMode{}, fmt.Errorf("%w: expiresAt must be in the next %s", ErrScanMode, MaxScanWindow)
		}
	} else {
		m.ExpiresAt = time.Time{}
	}
	m.SetBy, m.SetAt = by, now
	v, err := s.view(tenant)
	if err != nil {
		return ScanMode{}, err
	}
	for {
		var cur ScanMode
		rec, err := v.Get(ctx, CollSettings, "scanmode", &cur)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = v.Put(ctx, CollSettings, "scanmode", nil, m)
		case err != nil:
			return ScanMode{}, err
		default:
			_, err = v.Update(ctx, CollSettings, "scanmode", rec.Version, nil, m)
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return m, err
	}
}
