package signing

import (
	"encoding/json"
	"net/http"

	"github.com/go-jose/go-jose/v4"
)

// JWKSHandler serves the opinion-signing public keys (current and retired)
// as a JWKS: anyone holding them verifies a downloaded opinion offline. No
// token is needed: the keys are public.
func JWKSHandler(sg *Signer) http.Handler {
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: sg.PublicKeys()})
	if err != nil {
		panic("signing: jwks: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	})
}
