package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/auth/authtest"
	"github.com/secondopinion/gateway/internal/domain"
)

// signRaw signs a payload written by hand, byte for byte, so a test can send
// what no claims struct would marshal: duplicate keys, other letter cases,
// quoted numbers.
func signRaw(t *testing.T, key *authtest.Key, payload string) string {
	t.Helper()
	require.True(t, json.Valid([]byte(payload)), payload)
	header := map[string]string{"alg": key.Alg, "typ": "JWT"}
	if key.Kid != "" {
		header["kid"] = key.Kid
	}
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc(mustJSON(t, header)) + "." + enc([]byte(payload))
	sig, err := jwt.GetSigningMethod(key.Alg).Sign(signing, key.Private)
	require.NoError(t, err)
	return signing + "." + enc(sig)
}

// field is one member of a hand-written payload: its key as written and its
// raw JSON value.
type field struct{ key, raw string }

// payload writes fields as a JSON object, in order, duplicates kept.
type payload []field

func (p payload) String() string {
	parts := make([]string, len(p))
	for i, f := range p {
		parts[i] = fmt.Sprintf("%q:%s", f.key, f.raw)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// set replaces the value of key (raw "" drops it); add appends members.
func (p payload) set(key, raw string) payload {
	var out payload
	for _, f := range p {
		if f.key != key {
			out = append(out, f)
		} else if raw != "" {
			out = append(out, field{key, raw})
		}
	}
	return out
}

func (p payload) rename(key, to string) payload {
	out := slices.Clone(p)
	for i := range out {
		if out[i].key == key {
			out[i].key = to
		}
	}
	return out
}

func (p payload) add(key, raw string) payload { return append(slices.Clone(p), field{key, raw}) }

// memberPayload is a good member token's payload at t0 (the test clock).
func memberPayload() payload {
	return payload{
		{"iss", fmt.Sprintf("%q", testIssuer)},
		{"sub", `"m-1001"`},
		{"aud", fmt.Sprintf("%q", testAudience)},
		{"role", `"member"`},
		{"org", `"ins-northstar"`},
		{"iat", fmt.Sprint(t0.Add(-time.Minute).Unix())},
		{"exp", fmt.Sprint(t0.Add(time.Hour).Unix())},
	}
}

func TestStrictClaims(t *testing.T) {
	key := authtest.NewRSAKey(t)
	v := fileVerifier(t, auth.Options{}, standardIssuer(), key)
	ts := func(d time.Duration) string { return fmt.Sprint(t0.Add(d).Unix()) }
	quoted := func(d time.Duration) string { return fmt.Sprintf(`"%d"`, t0.Add(d).Unix()) }
	good := memberPayload()

	t.Run("a well-formed member token is accepted", func(t *testing.T) {
		p, err := v.Verify(context.Background(), signRaw(t, key, good.String()))
		require.NoError(t, err)
		assert.Equal(t, domain.Principal{Subject: "m-1001", Role: domain.RoleMember, Org: "ins-northstar"}, p)
	})

	tests := []struct {
		name    string
		payload payload
		reason  string
	}{
		// Finding 4, as reported: the last "ROLE" won and the member was a coordinator.
		{"a member token adding ROLE: coordinator and Org is refused", good.add("ROLE", `"coordinator"`).add("Org", `"op-x"`), "ambiguous_claims"},
		{"a second sub (SUB) replacing the subject is refused", good.add("SUB", `"m-2002"`), "ambiguous_claims"},
		{"an exact duplicate sub is refused", good.add("sub", `"m-2002"`), "ambiguous_claims"},
		{"an exact duplicate role is refused", good.add("role", `"coordinator"`), "ambiguous_claims"},
		{"a long-s ſub that encoding/json reads as sub is refused", good.add("ſub", `"m-2002"`), "ambiguous_claims"},
		{"a long-s ſcope instead of scope is refused", good.add("ſcope", `"audit:read"`), "ambiguous_claims"},
		{"exp written as a string is refused", good.set("exp", quoted(time.Hour)), "bad_claims"},
		{"iat written as a string is refused", good.set("iat", quoted(-time.Minute)), "bad_claims"},
		{"nbf written as a string is refused", good.add("nbf", quoted(-time.Minute)), "bad_claims"},
		{"exp null is refused", good.set("exp", "null"), "bad_claims"},
		{"iat an hour in the future is refused", good.set("iat", ts(time.Hour)), "not_yet_valid"},
		{"a lifetime of 24h and a minute from iat is refused", good.set("exp", ts(24*time.Hour)), "too_long_lived"},
		{"without iat, an exp 25h from now is refused", good.set("iat", "").set("exp", ts(25*time.Hour)), "too_long_lived"},
		{"an exp two months away with an iat long past is refused", good.set("iat", ts(-300*24*time.Hour)).set("exp", ts(65*24*time.Hour)), "too_long_lived"},
	}
	// value is a value each claim could validly have, so only the spelling
	// of its name can be what is refused.
	value := func(name string) string {
		switch name {
		case "exp":
			return ts(time.Hour)
		case "nbf", "iat":
			return ts(-time.Minute)
		case "role":
			return `"coordinator"`
		case "scope":
			return `"cases:read"`
		}
		for _, f := range good {
			if f.key == name {
				return f.raw
			}
		}
		return `"x"`
	}
	withClaim := func(name string) payload {
		for _, f := range good {
			if f.key == name {
				return good
			}
		}
		return good.add(name, value(name))
	}
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "role", "org", "scope", "specialist_id", "azp", "client_id"} {
		upper := strings.ToUpper(name)
		title := strings.ToUpper(name[:1]) + name[1:]
		tests = append(tests, []struct {
			name    string
			payload payload
			reason  string
		}{
			{fmt.Sprintf("%s alongside %s is refused", upper, name), good.add(upper, value(name)), "ambiguous_claims"},
			{fmt.Sprintf("%s instead of %s is refused", title, name), withClaim(name).rename(name, title), "ambiguous_claims"},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), signRaw(t, key, tt.payload.String()))
			require.Error(t, err, tt.payload.String())
			assert.Equal(t, tt.reason, auth.Reason(err))
			assert.Equal(t, domain.CodeUnauthenticated, domain.ErrorCode(err))
			assert.Equal(t, domain.Principal{}, p)
		})
	}

	accepted := []struct {
		name    string
		payload payload
	}{
		{"an unrelated claim in another case (Name) is accepted", good.add("Name", `"Ann"`).add("name", `"Ann"`)},
		{"iat within the leeway in the future is accepted", good.set("iat", ts(10*time.Second))},
		{"a lifetime of exactly 24h is accepted", good.set("iat", ts(-time.Hour)).set("exp", ts(23*time.Hour))},
		{"without iat, an exp 23h from now is accepted", good.set("iat", "").set("exp", ts(23*time.Hour))},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), signRaw(t, key, tt.payload.String()))
			assert.NoError(t, err, tt.payload.String())
		})
	}

	t.Run("Options.MaxLifetime replaces the 24h default", func(t *testing.T) {
		short := fileVerifier(t, auth.Options{MaxLifetime: 30 * time.Minute}, standardIssuer(), key)
		_, err := short.Verify(context.Background(), signRaw(t, key, good.String()))
		assert.Equal(t, "too_long_lived", auth.Reason(err), "iat-1m to exp+1h is 61 minutes")
		_, err = short.Verify(context.Background(), signRaw(t, key, good.set("exp", ts(29*time.Minute)).String()))
		assert.NoError(t, err)
	})
}
