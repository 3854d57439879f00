// Package auth verifies the gateway's bearer tokens (JWTs) and turns them into
// a domain.Principal: trusted issuers, JWKS key caches, the HTTP middleware and
// the websocket connection_init check.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/secondopinion/gateway/internal/domain"
)

// The algorithms a key may verify; each key verifies exactly one of them.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
	algHS256 = "HS256"
)

// Defaults of Options.
const (
	DefaultLeeway          = 30 * time.Second
	DefaultRefetchInterval = 5 * time.Minute
	// DefaultMaxLifetime is the longest a token may live (exp minus iat, or
	// minus now without iat) when Options.MaxLifetime is 0: a stolen token
	// is worth at most this long.
	DefaultMaxLifetime = 24 * time.Hour
	// MinHS256SecretLen is the shortest HS256 secret NewVerifier accepts.
	MinHS256SecretLen = 32
)

// fetchTimeout bounds one JWKS download.
const fetchTimeout = 5 * time.Second

// Options configures a Verifier.
type Options struct {
	// Issuers lists the trusted issuers; at least one is required. With
	// several, each needs a distinct Issuer and a token is checked only
	// against the issuer its iss claim names.
	Issuers []IssuerConfig
	// AllowHS256 permits HS256 secrets; it must be false in production.
	AllowHS256 bool
	// Leeway is the clock skew tolerated on exp, nbf and iat; 0 means
	// DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches JWKS URLs; nil means http.DefaultClient (each
	// fetch is bounded to 5s regardless).
	HTTPClient *http.Client
	// Logger receives key loading problems and rejected tokens' reasons;
	// nil discards.
	Logger *slog.Logger
	// RefetchInterval is the least time between two JWKS URL refetches
	// caused by an unknown kid; 0 means DefaultRefetchInterval.
	RefetchInterval time.Duration
	// MaxLifetime bounds exp minus iat (or minus now when the token has no
	// iat); 0 means DefaultMaxLifetime.
	MaxLifetime time.Duration
	// RequireIssuerAndAudience makes NewVerifier refuse any issuer without
	// an expected iss and at least one audience; set in production, where a
	// token signed by the same keys for another relying party must not pass.
	RequireIssuerAndAudience bool
	// Orgs, when set, is asked about every token's org: an unregistered or
	// suspended org, or a role that does not fit the org's kind, is refused.
	// Wrap a database-backed directory in NewOrgCache. Nil skips the check
	// (tests that do not wire a registry).
	Orgs OrgDirectory
}

// IssuerConfig describes one trusted issuer and where its keys come from.
type IssuerConfig struct {
	// Issuer is the expected iss claim; empty means not checked (only
	// possible with a single issuer).
	Issuer string
	// Audiences are the accepted aud values (any one suffices); empty means
	// not checked.
	Audiences []string
	// JWKSURL is an RFC 7517 key set fetched over HTTP(S).
	JWKSURL string
	// JWKSFile is an RFC 7517 key set on disk, re-read when it changes.
	JWKSFile string
	// HS256Secret is a shared secret, accepted only with Options.AllowHS256.
	HS256Secret []byte
	// Grants are the exact (role, org) pairs this issuer may assert. Empty
	// means the operator's own issuer, which may assert any pair (the org
	// registry still applies); at most one issuer may be ungranted.
	Grants []Grant
	// Clients, when not empty, are the only azp / client_id values this
	// issuer's tokens may carry (compared exactly): a token of this issuer
	// naming no client or another one is refused, and no other issuer may
	// name these clients. This is what binds a trusted-documents client to
	// its issuer.
	Clients []string
}

// Grant is one (role, org) pair an issuer may assert.
type Grant struct {
	Role domain.Role `json:"role"`
	Org  string      `json:"org"`
}

// Issuer is one trusted issuer as the Verifier uses it: the checks it applies
// and the keys it trusts.
type Issuer struct {
	// Issuer is the expected iss claim; empty means not checked.
	Issuer string
	// Audiences are the accepted aud values; empty means not checked.
	Audiences []string
	// Grants are the (role, org) pairs the issuer may assert; empty means
	// any (the operator's own issuer).
	Grants []Grant
	// Clients are the issuer's bound clients; empty means any or none.
	Clients []string

	secret  []byte
	sources []keySource
}

// hasKeys reports whether the issuer can verify anything right now.
func (is *Issuer) hasKeys() bool {
	if len(is.secret) > 0 {
		return true
	}
	for _, s := range is.sources {
		if s.loaded() {
			return true
		}
	}
	return false
}

// Claims are the token claims the gateway reads. Optional claims are omitted
// when empty so a minted token without a scope is not narrowed to nothing.
type Claims struct {
	jwt.RegisteredClaims
	// Role is one of domain.Roles.
	Role string `json:"role"`
	// Org is the caller's organisation; required for every role but member.
	Org string `json:"org,omitempty"`
	// Scope is the space-separated scope claim; when present it narrows
	// the role's rights.
	Scope string `json:"scope,omitempty"`
	// SpecialistID narrows a provider or partner token to one specialist.
	SpecialistID string `json:"specialist_id,omitempty"`
	// AZP is the authorized party (OIDC).
	AZP string `json:"azp,omitempty"`
	// ClientID is the OAuth client id, used when azp is absent.
	ClientID string `json:"client_id,omitempty"`
}

// peekClaims is what is read from a token before its signature is checked:
// only to choose the issuer, and to learn whether the scope claim is present
// (the verified payload is the same bytes).
type peekClaims struct {
	jwt.RegisteredClaims
	Scope *string `json:"scope"`
}

// Verifier checks bearer tokens against a list of trusted issuers. It is safe
// for concurrent use.
type Verifier struct {
	issuers     []*Issuer
	allowHS256  bool
	leeway      time.Duration
	maxLifetime time.Duration
	now         func() time.Time
	log         *slog.Logger
	orgs        OrgDirectory
	// clientIssuer maps each bound client to the one issuer that may name it.
	clientIssuer map[string]*Issuer
}

// NewVerifier builds a Verifier and loads its keys. A JWKS URL that cannot be
// fetched yet is not an error (Ready reports false and verification retries
// later); a JWKS file that cannot be read or parsed is.
func NewVerifier(opts Options) (*Verifier, error) {
	if len(opts.Issuers) == 0 {
		return nil, errors.New("auth: no issuer configured")
	}
	v := &Verifier{
		allowHS256:   opts.AllowHS256,
		leeway:       opts.Leeway,
		maxLifetime:  opts.MaxLifetime,
		now:          opts.Now,
		log:          opts.Logger,
		orgs:         opts.Orgs,
		clientIssuer: map[string]*Issuer{},
	}
	if v.leeway <= 0 {
		v.leeway = DefaultLeeway
	}
	if v.maxLifetime <= 0 {
		v.maxLifetime = DefaultMaxLifetime
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	interval := opts.RefetchInterval
	if interval <= 0 {
		interval = DefaultRefetchInterval
	}

	seen := map[string]bool{}
	ungranted := 0
	for i, ic := range opts.Issuers {
		if opts.RequireIssuerAndAudience && (strings.TrimSpace(ic.Issuer) == "" || len(ic.Audiences) == 0) {
			return nil, fmt.Errorf("auth: issuer #%d (%q): an expected issuer (iss) and at least one audience are required", i+1, ic.Issuer)
		}
		if len(opts.Issuers) > 1 {
			if ic.Issuer == "" {
				return nil, fmt.Errorf("auth: issuer #%d: several issuers are configured, so each needs its iss value", i+1)
			}
			if seen[ic.Issuer] {
				return nil, fmt.Errorf("auth: issuer %q configured twice", ic.Issuer)
			}
			seen[ic.Issuer] = true
		}
		for _, g := range ic.Grants {
			if !g.Role.Valid() {
				return nil, fmt.Errorf("auth: issuer %q: unknown granted role %q", ic.Issuer, g.Role)
			}
			if strings.TrimSpace(g.Org) == "" {
				return nil, fmt.Errorf("auth: issuer %q: a grant of role %q names no org", ic.Issuer, g.Role)
			}
		}
		// Only the operator's own issuer may assert any pair; two such
		// issuers would be a partner trusted with everything.
		if len(ic.Grants) == 0 {
			ungranted++
			if ungranted > 1 {
				return nil, fmt.Errorf("auth: issuer %q: only one issuer (the operator's own) may be configured without grants", ic.Issuer)
			}
		}
		is := &Issuer{
			Issuer:    ic.Issuer,
			Audiences: slices.Clone(ic.Audiences),
			Grants:    slices.Clone(ic.Grants),
			Clients:   slices.Clone(ic.Clients),
		}
		for _, c := range ic.Clients {
			if strings.TrimSpace(c) == "" {
				return nil, fmt.Errorf("auth: issuer %q: an empty client id", ic.Issuer)
			}
			if other, ok := v.clientIssuer[c]; ok && other != is {
				return nil, fmt.Errorf("auth: client %q is bound to issuers %q and %q; a client belongs to one issuer", c, other.Issuer, ic.Issuer)
			}
			v.clientIssuer[c] = is
		}
		if len(ic.HS256Secret) > 0 {
			if !opts.AllowHS256 {
				return nil, fmt.Errorf("auth: issuer %q: an HS256 secret is configured but HS256 is not allowed", ic.Issuer)
			}
			if len(ic.HS256Secret) < MinHS256SecretLen {
				return nil, fmt.Errorf("auth: issuer %q: the HS256 secret must be at least %d bytes", ic.Issuer, MinHS256SecretLen)
			}
			is.secret = slices.Clone(ic.HS256Secret)
		}
		if ic.JWKSFile != "" {
			fs := &fileSource{path: ic.JWKSFile, log: v.log}
			if err := fs.reload(); err != nil {
				return nil, fmt.Errorf("auth: issuer %q: %w", ic.Issuer, err)
			}
			is.sources = append(is.sources, fs)
		}
		if ic.JWKSURL != "" {
			us := &urlSource{url: ic.JWKSURL, client: client, interval: interval, now: v.now, log: v.log}
			if err := us.fetch(context.Background()); err != nil {
				v.log.Warn("auth: JWKS not available yet", "issuer", ic.Issuer, "url", ic.JWKSURL, "err", err)
			}
			is.sources = append(is.sources, us)
		}
		if len(is.secret) == 0 && len(is.sources) == 0 {
			return nil, fmt.Errorf("auth: issuer %q has no key source (JWKS URL, JWKS file or HS256 secret)", ic.Issuer)
		}
		v.issuers = append(v.issuers, is)
	}
	return v, nil
}

// Issuers returns the trusted issuers, in configuration order.
func (v *Verifier) Issuers() []Issuer {
	out := make([]Issuer, len(v.issuers))
	for i, is := range v.issuers {
		out[i] = Issuer{
			Issuer:    is.Issuer,
			Audiences: slices.Clone(is.Audiences),
			Grants:    slices.Clone(is.Grants),
			Clients:   slices.Clone(is.Clients),
		}
	}
	return out
}

// ClientIssuer returns the issuer a bound client belongs to (the issuer
// whose IssuerConfig.Clients lists it); ok is false for an unbound client.
func (v *Verifier) ClientIssuer(client string) (issuer string, ok bool) {
	is, ok := v.clientIssuer[client]
	if !ok {
		return "", false
	}
	return is.Issuer, true
}

// Ready reports whether every issuer has at least one key loaded. For a JWKS
// URL that has no keys yet it retries the download, rate limited.
func (v *Verifier) Ready() bool {
	for _, is := range v.issuers {
		if is.hasKeys() {
			continue
		}
		for _, s := range is.sources {
			s.retryIfEmpty(context.Background())
		}
		if !is.hasKeys() {
			return false
		}
	}
	return true
}

// Verify checks a raw JWT and returns the principal it names. Every failure
// is a *VerifyError.
func (v *Verifier) Verify(ctx context.Context, raw string) (domain.Principal, error) {
	p, _, err := v.verify(ctx, raw)
	return p, err
}

// verify is Verify that also returns the token's expiry.
func (v *Verifier) verify(ctx context.Context, raw string) (domain.Principal, time.Time, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return domain.Principal{}, time.Time{}, reject("missing_token", nil)
	}

	// Before any struct decoding: encoding/json would read "ROLE" as role
	// and keep the last of two "sub"s.
	if err := checkPayload(raw); err != nil {
		return domain.Principal{}, time.Time{}, err
	}

	// Read the header and iss without trusting them: they only choose the
	// issuer and key; the pinned algorithm and signature decide.
	var peek peekClaims
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &peek)
	if err != nil {
		return domain.Principal{}, time.Time{}, reject("malformed", err)
	}
	alg, _ := tok.Header["alg"].(string)
	kid, _ := tok.Header["kid"].(string)

	is, err := v.selectIssuer(peek.Issuer)
	if err != nil {
		return domain.Principal{}, time.Time{}, err
	}
	key, err := v.keyFor(ctx, is, alg, kid)
	if err != nil {
		return domain.Principal{}, time.Time{}, err
	}

	popts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{key.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	}
	if is.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(is.Issuer))
	}
	if len(is.Audiences) > 0 {
		popts = append(popts, jwt.WithAudience(is.Audiences...))
	}
	var c Claims
	if _, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return key.pub, nil }, popts...); err != nil {
		return domain.Principal{}, time.Time{}, reject(jwtReason(err), err)
	}

	start := v.now()
	if c.IssuedAt != nil {
		start = c.IssuedAt.Time
	}
	if life := c.ExpiresAt.Sub(start); life > v.maxLifetime {
		return domain.Principal{}, time.Time{}, reject("too_long_lived", fmt.Errorf("lifetime %s exceeds %s", life, v.maxLifetime))
	}

	p, err := is.principal(c, peek.Scope != nil)
	if err != nil {
		return domain.Principal{}, time.Time{}, err
	}
	if other, ok := v.clientIssuer[p.ClientID]; ok && other != is {
		return domain.Principal{}, time.Time{}, reject("unknown_client", fmt.Errorf("client %q is bound to issuer %q", p.ClientID, other.Issuer))
	}
	if err := v.checkOrg(ctx, p); err != nil {
		return domain.Principal{}, time.Time{}, err
	}
	return p, c.ExpiresAt.Time, nil
}

// selectIssuer picks the issuer a token claims to come from. With a single
// issuer the iss check is left to the parser (and skipped when unset).
func (v *Verifier) selectIssuer(iss string) (*Issuer, error) {
	if len(v.issuers) == 1 {
		return v.issuers[0], nil
	}
	for _, is := range v.issuers {
		if is.Issuer == iss {
			return is, nil
		}
	}
	return nil, reject("bad_issuer", fmt.Errorf("no trusted issuer %q", iss))
}

// keyFor finds the one key that may verify a token with this header.
func (v *Verifier) keyFor(ctx context.Context, is *Issuer, alg, kid string) (verifyKey, error) {
	switch alg {
	case "", "none":
		return verifyKey{}, reject("bad_algorithm", fmt.Errorf("algorithm %q refused", alg))
	case algHS256:
		if !v.allowHS256 || len(is.secret) == 0 {
			return verifyKey{}, reject("bad_algorithm", errors.New("HS256 is not accepted"))
		}
		return verifyKey{kid: kid, alg: algHS256, pub: is.secret}, nil
	}
	for _, s := range is.sources {
		if k, ok := s.lookup(kid, alg); ok {
			return k, nil
		}
	}
	for _, s := range is.sources {
		if s.refetchOnMiss(ctx) {
			if k, ok := s.lookup(kid, alg); ok {
				return k, nil
			}
		}
	}
	return verifyKey{}, reject("unknown_key", fmt.Errorf("no key with kid %q", kid))
}

// principal applies the gateway's claim rules and the issuer's limits.
func (is *Issuer) principal(c Claims, scopePresent bool) (domain.Principal, error) {
	if c.Subject == "" {
		return domain.Principal{}, reject("bad_claims", errors.New("sub is missing"))
	}
	role := domain.Role(c.Role)
	if !role.Valid() {
		return domain.Principal{}, reject("unknown_role", fmt.Errorf("role %q", c.Role))
	}
	// Every role names its org, a member too: a member id means something
	// only within its insurer.
	if c.Org == "" {
		return domain.Principal{}, reject("bad_claims", fmt.Errorf("org is missing for role %q", role))
	}
	// The pair is checked whole: an issuer granted provider@A and partner@B
	// must not mint provider@B.
	if len(is.Grants) > 0 && !slices.Contains(is.Grants, Grant{Role: role, Org: c.Org}) {
		return domain.Principal{}, reject("not_allowed", fmt.Errorf("issuer %q may not assert %s@%s", is.Issuer, role, c.Org))
	}
	p := domain.Principal{
		Subject:      c.Subject,
		Role:         role,
		Org:          c.Org,
		SpecialistID: c.SpecialistID,
		ClientID:     c.AZP,
	}
	if p.ClientID == "" {
		p.ClientID = c.ClientID
	}
	// A client bound to trusted documents must not be escaped by the same
	// issuer leaving it out or naming another (or a differently cased) one.
	if len(is.Clients) > 0 && !slices.Contains(is.Clients, p.ClientID) {
		return domain.Principal{}, reject("unknown_client", fmt.Errorf("issuer %q: client %q is not one of its bound clients", is.Issuer, p.ClientID))
	}
	if scopePresent {
		p.TokenScopes = domain.ParseScopes(c.Scope)
	}
	return p, nil
}

// jwtReason maps a golang-jwt error to a VerifyError reason. The specific
// claim errors come first: they are joined under ErrTokenInvalidClaims.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad_signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not_yet_valid"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "bad_issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "bad_audience"
	default:
		return "bad_claims"
	}
}

// VerifyError is why a token was refused. Reason is for logs and metrics
// only; clients only ever see UNAUTHENTICATED with a generic message.
type VerifyError struct {
	// Reason is a short stable label: missing_token, malformed,
	// bad_algorithm, bad_signature, expired, not_yet_valid, unknown_key,
	// bad_issuer, bad_audience, bad_claims, ambiguous_claims,
	// too_long_lived, unknown_role, not_allowed, unknown_client,
	// unknown_org, org_suspended, role_mismatch or org_lookup.
	Reason string
	// Err is the underlying cause, if any; for logs only.
	Err error
}

func reject(reason string, err error) *VerifyError { return &VerifyError{Reason: reason, Err: err} }

// Error implements error.
func (e *VerifyError) Error() string {
	if e.Err == nil {
		return "auth: token rejected: " + e.Reason
	}
	return "auth: token rejected: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap exposes the client-safe UNAUTHENTICATED *domain.Error first, so
// domain.ErrorCode and domain.ErrorMessage never reveal the reason, then the
// cause.
func (e *VerifyError) Unwrap() []error {
	errs := []error{e.Public()}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Public returns the error a client may see: UNAUTHENTICATED with
// "authentication required" for a missing token, "invalid token" otherwise.
func (e *VerifyError) Public() *domain.Error {
	return domain.Errorf(domain.CodeUnauthenticated, "%s", publicMessage(e.Reason))
}

func publicMessage(reason string) string {
	if reason == "missing_token" {
		return msgAuthRequired
	}
	return msgInvalidToken
}

// Reason returns the VerifyError reason in err's chain, "" for nil and
// "internal" for any other error.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return "internal"
}
