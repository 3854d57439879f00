package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
)

// ErrUnknownOrg is what an OrgDirectory returns (wrapped or not) for an org
// that is not registered.
var ErrUnknownOrg = errors.New("auth: unknown org")

// OrgDirectory answers what the org registry knows about an org: its kind
// and whether it is active. An unregistered org is ErrUnknownOrg (a
// domain NOT_FOUND error is read the same way); any other error is a failed
// lookup, and the token is refused rather than trusted blind.
type OrgDirectory interface {
	Org(ctx context.Context, id string) (kind domain.OrgKind, active bool, err error)
}

// roleOrgKind is the one kind of org each role may name, so
// a network is only ever read with partner rules, whatever a token says.
var roleOrgKind = map[domain.Role]domain.OrgKind{
	domain.RoleMember:      domain.OrgInsurer,
	domain.RoleInsurer:     domain.OrgInsurer,
	domain.RoleProvider:    domain.OrgProvider,
	domain.RolePartner:     domain.OrgNetwork,
	domain.RoleCoordinator: domain.OrgOperator,
}

// checkOrg refuses a principal whose org is unregistered, suspended or of a
// kind its role does not fit. Without a directory it checks nothing.
func (v *Verifier) checkOrg(ctx context.Context, p domain.Principal) error {
	if v.orgs == nil {
		return nil
	}
	kind, active, err := v.orgs.Org(ctx, p.Org)
	switch {
	case isUnknownOrg(err):
		return reject("unknown_org", fmt.Errorf("org %q is not registered", p.Org))
	case err != nil:
		return reject("org_lookup", fmt.Errorf("org %q: %w", p.Org, err))
	case !active:
		return reject("org_suspended", fmt.Errorf("org %q is suspended", p.Org))
	case roleOrgKind[p.Role] != kind:
		return reject("role_mismatch", fmt.Errorf("role %q does not fit org %q of kind %s", p.Role, p.Org, kind))
	}
	return nil
}

func isUnknownOrg(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnknownOrg) {
		return true
	}
	var de *domain.Error
	return errors.As(err, &de) && de.Code == domain.CodeNotFound
}

// MaxOrgCacheTTL is the longest an OrgCache keeps an answer: a suspension
// takes effect within it.
const MaxOrgCacheTTL = 60 * time.Second

// maxNegativeTTL bounds how long "not registered" is remembered, so an org
// registered just after a refused token works again soon.
const maxNegativeTTL = 5 * time.Second

// orgCacheSweep is the entry count above which expired entries are dropped
// when a new one is stored.
const orgCacheSweep = 4096

// OrgCache is an OrgDirectory that remembers another directory's answers
// for a short time, so a token's org check does not read the database on
// every request. Failed lookups are not remembered. Safe for concurrent use.
type OrgCache struct {
	dir    OrgDirectory
	ttl    time.Duration
	negTTL time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]orgEntry
}

type orgEntry struct {
	kind    domain.OrgKind
	active  bool
	unknown bool
	expires time.Time
}

var _ OrgDirectory = (*OrgCache)(nil)

// NewOrgCache wraps dir. A ttl of 0 or above MaxOrgCacheTTL is
// MaxOrgCacheTTL; "not registered" is kept for at most 5 s.
func NewOrgCache(dir OrgDirectory, ttl time.Duration) *OrgCache {
	if ttl <= 0 || ttl > MaxOrgCacheTTL {
		ttl = MaxOrgCacheTTL
	}
	return &OrgCache{
		dir: dir, ttl: ttl, negTTL: min(ttl, maxNegativeTTL), now: time.Now,
		entries: map[string]orgEntry{},
	}
}

// WithClock makes the cache read time from now (for tests); it returns c.
func (c *OrgCache) WithClock(now func() time.Time) *OrgCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	return c
}

// Org implements OrgDirectory.
func (c *OrgCache) Org(ctx context.Context, id string) (domain.OrgKind, bool, error) {
	c.mu.Lock()
	now := c.now()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		if e.unknown {
			return "", false, ErrUnknownOrg
		}
		return e.kind, e.active, nil
	}

	kind, active, err := c.dir.Org(ctx, id)
	unknown := isUnknownOrg(err)
	if err != nil && !unknown {
		return "", false, err
	}
	e = orgEntry{kind: kind, active: active, unknown: unknown, expires: now.Add(c.ttl)}
	if unknown {
		e.expires = now.Add(c.negTTL)
	}
	c.mu.Lock()
	if len(c.entries) >= orgCacheSweep {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[id] = e
	c.mu.Unlock()
	if unknown {
		return "", false, ErrUnknownOrg
	}
	return kind, active, nil
}

// CheckOrg re-checks, for a connection that outlives one request (a
// websocket), that p's org is still registered, active and of the kind its
// role needs; lookups go through the cache, so a suspension shows within
// its TTL.
func (v *Verifier) CheckOrg(ctx context.Context, p domain.Principal) error {
	return v.checkOrg(ctx, p)
}
