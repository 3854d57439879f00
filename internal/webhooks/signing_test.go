package webhooks_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/webhooks"
)

// The example of the Standard Webhooks specification: any receiver library
// that follows it verifies what we send.
func TestSignMatchesTheStandardWebhooksExample(t *testing.T) {
	sig, err := webhooks.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	assert.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)
}

func TestVerify(t *testing.T) {
	secret := webhooks.NewSecret()
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	now := time.Now()
	body := []byte(`{"a":1}`)
	sig, err := webhooks.Sign(secret, "id-1", now.Unix(), body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("webhook-id", "id-1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", "v1,bm90LWl0 "+sig)
	require.NoError(t, webhooks.Verify(secret, h, body, now, 5*time.Minute), "any of several signatures may match")
	assert.ErrorIs(t, webhooks.Verify(secret, h, []byte(`{"a":2}`), now, 5*time.Minute), webhooks.ErrBadSignature)
	assert.ErrorIs(t, webhooks.Verify(webhooks.NewSecret(), h, body, now, 5*time.Minute), webhooks.ErrBadSignature)
	assert.ErrorIs(t, webhooks.Verify(secret, h, body, now.Add(10*time.Minute), 5*time.Minute), webhooks.ErrTimestamp)
	h.Del("webhook-id")
	assert.ErrorIs(t, webhooks.Verify(secret, h, body, now, 5*time.Minute), webhooks.ErrNoSignature)
}

func TestValidateEndpoint(t *testing.T) {
	for _, c := range []struct {
		url        string
		production bool
		ok         bool
	}{
		{"https://hooks.example.com/x", true, true},
		{"https://hooks.example.com/x", false, true},
		{"http://hooks.example.com/x", false, false},
		{"http://hooks.example.com/x", true, false},
		{"http://127.0.0.1:8081/hook", false, true},
		{"http://[::1]:8081/hook", false, true},
		{"http://localhost:8081/hook", false, true},
		{"http://127.0.0.1:8081/hook", true, false},
		{"https://127.0.0.1/hook", true, false},
		{"https://10.1.2.3/hook", true, false},
		{"https://169.254.169.254/latest", true, false},
		{"https://localhost/hook", true, false},
		{"https://user:pw@hooks.example.com/", false, false},
		{"ftp://hooks.example.com/", false, false},
		{"/relative", false, false},
		{"https://hooks.example.com/#frag", false, false},
	} {
		_, err := webhooks.ValidateEndpoint(c.url, c.production)
		assert.Equal(t, c.ok, err == nil, "%s (production %v): %v", c.url, c.production, err)
	}
}
