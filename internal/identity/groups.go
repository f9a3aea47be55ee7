package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/store"
)

// Groups of users, for record restriction (layer 3): a record restricted to
// groups is visible only to their members. A tenant has few groups, so a
// user's groups are found by reading them all.

// CollGroups holds a tenant's groups.
const CollGroups = "groups"

// MaxGroupMembers bounds a group's size.
const MaxGroupMembers = 10000

// Group is a named set of users.
type Group struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Members   []string  `json:"members"`
	CreatedAt time.Time `json:"createdAt"`
}

// ErrGroup means a group request is invalid.
var ErrGroup = errors.New("identity: invalid group")

// CreateGroup creates an empty group of tenant.
func (s *Service) CreateGroup(ctx context.Context, tenant, name string) (Group, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 128 {
		return Group{}, fmt.Errorf("%w: a name of 1 to 128 characters", ErrGroup)
	}
	v, err := s.view(tenant)
	if err != nil {
		return Group{}, err
	}
	g := Group{ID: NewID(), Name: name, Members: []string{}, CreatedAt: s.now().UTC()}
	if _, err := v.Put(ctx, CollGroups, g.ID, nil, g); err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

// Groups calls fn for every group of tenant.
func (s *Service) Groups(ctx context.Context, tenant string, fn func(Group) error) error {
	v, err := s.view(tenant)
	if err != nil {
		return err
	}
	return each(ctx, v, CollGroups, fn)
}

// Group returns tenant's group id, or store.ErrNotFound.
func (s *Service) Group(ctx context.Context, tenant, id string) (Group, error) {
	v, err := s.view(tenant)
	if err != nil {
		return Group{}, err
	}
	var g Group
	_, err = v.Get(ctx, CollGroups, id, &g)
	return g, err
}

// SetGroupMembers replaces the members of tenant's group id; every member
// must be a user of tenant.
func (s *Service) SetGroupMembers(ctx context.Context, tenant, id string, members []string) (Group, error) {
	if len(members) > MaxGroupMembers {
		return Group{}, fmt.Errorf("%w: at most %d members", ErrGroup, MaxGroupMembers)
	}
	v, err := s.view(tenant)
	if err != nil {
		return Group{}, err
	}
	members = slices.Compact(slices.Sorted(slices.Values(members)))
	for _, m := range members {
		var u User
		if _, err := v.Get(ctx, CollUsers, m, &u); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return Group{}, fmt.Errorf("%w: no user %q in this tenant", ErrGroup, m)
		} else if err != nil {
			return Group{}, err
		}
	}
	for {
		var g Group
		rec, err := v.Get(ctx, CollGroups, id, &g)
		if err != nil {
			return Group{}, err
		}
		g.Members = members
		_, err = v.Update(ctx, CollGroups, id, rec.Version, nil, g)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return g, err
	}
}

// UserGroups returns the ids of tenant's groups that user belongs to.
func (s *Service) UserGroups(ctx context.Context, tenant, user string) ([]string, error) {
	var out []string
	err := s.Groups(ctx, tenant, func(g Group) error {
		if slices.Contains(g.Members, user) {
			out = append(out, g.ID)
		}
		return nil
	})
	return out, err
}
