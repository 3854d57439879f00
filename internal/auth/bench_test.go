package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/auth/authtest"
)

func BenchmarkVerifyRS256(b *testing.B) {
	key := authtest.NewRSAKey(b)
	path := b.TempDir() + "/jwks.json"
	authtest.WriteJWKS(b, path, key)
	v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{JWKSFile: path}}})
	if err != nil {
		b.Fatal(err)
	}
	tok := key.Sign(b, jwt.MapClaims{"sub": "m-1", "role": "member", "org": "ins-1", "exp": time.Now().Add(time.Hour).Unix()})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: secret}}, AllowHS256: true})
	if err != nil {
		b.Fatal(err)
	}
	c := auth.Claims{Role: "member", Org: "ins-1"}
	c.Subject = "m-1"
	tok, err := auth.MintHS256(secret, c, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
