package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// TrustFile is the JWT_TRUST_FILE document: the identity providers the
// gateway trusts, one per partner, and the exact (role, org) pairs each may
// assert. An insurer's member-app identity provider is granted member for
// that insurer alone:
//
//	{"issuers": [{
//	  "issuer": "https://idp.euro-experts.example/",
//	  "audiences": ["second-opinion-gateway"],
//	  "jwksUrl": "https://idp.euro-experts.example/jwks.json",
//	  "grants": [{"role": "partner", "org": "net-euro-experts"}],
//	  "clients": ["euro-backoffice"]
//	}, {
//	  "issuer": "https://login.maple-insurance.example/",
//	  "audiences": ["second-opinion-gateway"],
//	  "jwksUrl": "https://login.maple-insurance.example/jwks.json",
//	  "grants": [{"role": "member", "org": "ins-maple"}]
//	}]}
type TrustFile struct {
	Issuers []TrustedIssuer `json:"issuers"`
}

// TrustedIssuer is one entry of a trust file.
type TrustedIssuer struct {
	// Issuer is the exact iss of its tokens (required).
	Issuer string `json:"issuer"`
	// Audiences are the aud values accepted from it (at least one).
	Audiences []string `json:"audiences"`
	// JWKSURL or JWKSFile (exactly one) holds its public keys.
	JWKSURL  string `json:"jwksUrl"`
	JWKSFile string `json:"jwksFile"`
	// Grants are the exact (role, org) pairs it may assert (at least one).
	Grants []Grant `json:"grants"`
	// Clients, when present, are the only azp / client_id values its
	// tokens may carry (see IssuerConfig.Clients).
	Clients []string `json:"clients,omitempty"`
}

// oldTrustKeys are the keys of the first trust-file format, whose separate
// role and org lists could not say which org goes with which role.
var oldTrustKeys = []string{"roles", "orgs"}

// LoadTrustFile reads and checks a trust file. Every entry must name its
// issuer, its audiences, a key source and its grants: an identity provider
// with no stated grant is refused rather than trusted with everything, and
// one without an audience would accept tokens minted for anyone else.
func LoadTrustFile(path string) ([]IssuerConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: trust file: %w", err)
	}
	if err := refuseOldTrustFormat(path, b); err != nil {
		return nil, err
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
		if len(e.Audiences) == 0 || slices.Contains(e.Audiences, "") {
			return nil, fmt.Errorf("%s: audiences is required (the aud values its tokens are minted for)", where)
		}
		if (e.JWKSURL == "") == (e.JWKSFile == "") {
			return nil, fmt.Errorf("%s: exactly one of jwksUrl and jwksFile is required", where)
		}
		if len(e.Grants) == 0 {
			return nil, fmt.Errorf(`%s: grants is required (which {"role", "org"} pairs may this issuer assert?)`, where)
		}
		for _, g := range e.Grants {
			if !g.Role.Valid() {
				return nil, fmt.Errorf("%s: unknown role %q in grants", where, g.Role)
			}
			if strings.TrimSpace(g.Org) == "" {
				return nil, fmt.Errorf("%s: a grant of role %q names no org", where, g.Role)
			}
		}
		out = append(out, IssuerConfig{
			Issuer: e.Issuer, Audiences: slices.Clone(e.Audiences), JWKSURL: e.JWKSURL, JWKSFile: e.JWKSFile,
			Grants: slices.Clone(e.Grants), Clients: slices.Clone(e.Clients),
		})
	}
	return out, nil
}

// refuseOldTrustFormat names the new format when an entry still uses the
// roles / orgs lists, instead of DisallowUnknownFields' bare "unknown field".
func refuseOldTrustFormat(path string, b []byte) error {
	var loose struct {
		Issuers []map[string]json.RawMessage `json:"issuers"`
	}
	if json.Unmarshal(b, &loose) != nil {
		return nil // the strict decode reports it
	}
	for i, e := range loose.Issuers {
		for _, k := range oldTrustKeys {
			if _, ok := e[k]; ok {
				return fmt.Errorf(`auth: trust file %s, issuer %d: %q is no longer read: list the exact pairs the issuer may assert as "grants": [{"role": "partner", "org": "net-…"}, …] (a grant of roles and orgs apart let an issuer mint any role for any of its orgs)`, path, i, k)
			}
		}
	}
	return nil
}
