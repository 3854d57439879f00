// Package webhooks delivers case events to partners' HTTPS endpoints, signed
// per the Standard Webhooks conventions, from a persisted outbox.
//
// The Service is the API side (register, list, delete, redeliver), usable on
// every replica. The Dispatcher runs on every replica too: one of them at a
// time (by lease) turns new case events into deliveries, and one worker per
// subscription, somewhere in the cluster (by lease), sends them in order per
// case, retrying with exponential back-off and jitter until the attempts run
// out and the delivery becomes a dead letter.
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// NewSecret returns a new signing secret: "whsec_" and 32 random bytes in
// base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

func secretKey(secret string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
}

// Sign returns the webhook-signature header value for a message:
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
func Sign(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", errors.New("webhooks: malformed secret")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// Verification errors.
var (
	ErrNoSignature  = errors.New("webhooks: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrTimestamp    = errors.New("webhooks: timestamp outside the tolerance")
	ErrBadSignature = errors.New("webhooks: no matching signature")
)

// Verify checks a received message as a receiver would: the headers are
// present, the timestamp is within tolerance of now, and one of the
// space-separated signatures matches. Receivers in Go may use it as it is.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return ErrNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want, err := Sign(secret, id, sec, body)
	if err != nil {
		return err
	}
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
