package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// securityClaims are the claim names that decide who the caller is or how
// long the token lives. encoding/json (which golang-jwt uses) matches a JSON
// key to a struct field case-insensitively and lets the last duplicate win,
// so a signed payload naming "ROLE" after "role" would be read as the second
// one; the payload is scanned for them before any struct decoding.
var securityClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat",
	"role", "org", "scope", "specialist_id", "azp", "client_id",
}

// numericClaims must be JSON numbers: golang-jwt's NumericDate accepts a
// quoted number too, which lets a token say one thing to us and another to
// a stricter reader.
var numericClaims = map[string]bool{"exp": true, "nbf": true, "iat": true}

// foldKey folds a key the way encoding/json does when it matches a field
// name (ToUpper of ToLower, rune by rune), so "ſub" (long s) and "SUB" fold
// as "sub" does: anything encoding/json would read as a security claim is
// caught here.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToLower(r)) }, s)
}

// foldedSecurityClaims maps each security claim's folded form to its exact
// name.
var foldedSecurityClaims = func() map[string]string {
	m := make(map[string]string, len(securityClaims))
	for _, c := range securityClaims {
		m[foldKey(c)] = c
	}
	return m
}()

// checkPayload scans the raw payload of a compact JWT: it must be one JSON
// object whose top-level keys are all distinct, whose security claims are
// spelled exactly and appear at most once, and whose exp, nbf and iat are
// numbers. It runs before any struct decoding of the payload.
func checkPayload(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return reject("malformed", errors.New("a token has three parts"))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return reject("malformed", fmt.Errorf("payload is not base64url: %w", err))
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return reject("malformed", errors.New("payload is not a JSON object"))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return reject("malformed", fmt.Errorf("payload: %w", err))
		}
		key, ok := tok.(string)
		if !ok {
			return reject("malformed", errors.New("payload key is not a string"))
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return reject("malformed", fmt.Errorf("payload value of %q: %w", key, err))
		}
		if seen[key] {
			return reject("ambiguous_claims", fmt.Errorf("claim %q appears twice", key))
		}
		seen[key] = true
		exact, security := foldedSecurityClaims[foldKey(key)]
		if !security {
			continue
		}
		if key != exact {
			return reject("ambiguous_claims", fmt.Errorf("claim %q is spelled %q", exact, key))
		}
		if numericClaims[key] && !isJSONNumber(value) {
			return reject("bad_claims", fmt.Errorf("claim %q is not a JSON number", key))
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return reject("malformed", errors.New("payload object is not closed"))
	}
	if _, err := dec.Token(); err != io.EOF {
		return reject("malformed", errors.New("data after the payload object"))
	}
	return nil
}

// isJSONNumber reports whether a raw JSON value is a number (not a string,
// null or anything else).
func isJSONNumber(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}
