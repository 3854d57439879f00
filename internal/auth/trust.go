package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/secondopinion/gateway/internal/domain"
)

// TrustFile is the JWT_TRUST_FILE document: the identity providers the
// gateway trusts, one per partner, and what each may assert.
//
//	{"issuers": [{
//	  "issuer": "https://idp.euro-experts.example/",
//	  "audiences": ["second-opinion-gateway"],
//	  "jwksUrl": "https://idp.euro-experts.example/jwks.json",
//	  "roles": ["partner"],
//	  "orgs": ["net-euro-experts"]
//	}]}
type TrustFile struct {
	Issuers []TrustedIssuer `json:"issuers"`
}

// TrustedIssuer is one entry of a trust file.
type TrustedIssuer struct {
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences"`
	JWKSURL   string   `json:"jwksUrl"`
	JWKSFile  string   `json:"jwksFile"`
	Roles     []string `json:"roles"`
	Orgs      []string `json:"orgs"`
}

// LoadTrustFile reads and checks a trust file. Every entry must name its
// issuer, a key source, the roles it may mint and, unless it mints only
// member tokens, the org values: an identity provider with no stated grant
// is refused rather than trusted with everything.
func LoadTrustFile(path string) ([]IssuerConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: trust file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var tf TrustFile
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("auth: trust file %s: %w", path, err)
	}
	if len(tf.Issuers) == 0 {
		return nil, fmt.Errorf("auth: trust file %s lists no issuers", path)
	}
	var out []IssuerConfig
	seen := map[string]bool{}
	for i, e := range tf.Issuers {
		where := fmt.Sprintf("auth: trust file %s, issuer %d", path, i)
		if strings.TrimSpace(e.Issuer) == "" {
			return nil, fmt.Errorf("%s: issuer is required", where)
		}
		if seen[e.Issuer] {
			return nil, fmt.Errorf("%s: %q is listed twice", where, e.Issuer)
		}
		seen[e.Issuer] = true
		if (e.JWKSURL == "") == (e.JWKSFile == "") {
			return nil, fmt.Errorf("%s: exactly one of jwksUrl and jwksFile is required", where)
		}
		if len(e.Roles) == 0 {
			return nil, fmt.Errorf("%s: roles is required (what may this issuer assert?)", where)
		}
		roles := make([]domain.Role, 0, len(e.Roles))
		onlyMembers := true
		for _, r := range e.Roles {
			role := domain.Role(r)
			if !role.Valid() {
				return nil, fmt.Errorf("%s: unknown role %q", where, r)
			}
			roles = append(roles, role)
			onlyMembers = onlyMembers && role == domain.RoleMember
		}
		if len(e.Orgs) == 0 && !onlyMembers {
			return nil, fmt.Errorf("%s: orgs is required for roles other than member", where)
		}
		out = append(out, IssuerConfig{
			Issuer: e.Issuer, Audiences: slices.Clone(e.Audiences), JWKSURL: e.JWKSURL, JWKSFile: e.JWKSFile,
			AllowedRoles: roles, AllowedOrgs: slices.Clone(e.Orgs),
		})
	}
	return out, nil
}
