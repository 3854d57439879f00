package config_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := config.Load(env(nil))
	require.NoError(t, err)

	assert.Equal(t, ":8080", c.Addr)
	assert.Equal(t, "development", c.Env)
	assert.False(t, c.Production())
	assert.Empty(t, c.MongoURI)
	assert.Equal(t, "secondopinion", c.MongoDatabase)
	assert.Equal(t, "./data", c.DataDir)
	assert.Empty(t, c.JWTIssuer)
	assert.Empty(t, c.JWTAudiences)
	assert.Empty(t, c.JWTHS256Secret, "the server makes the dev secret, not config")
	assert.False(t, c.HasJWKS())
	assert.True(t, c.SeedDemo)
	assert.Equal(t, 10*time.Second, c.RequestTimeout)
	assert.EqualValues(t, 1<<20, c.MaxBodyBytes)
	assert.Empty(t, c.WSAllowedOrigins)
	assert.Equal(t, slog.LevelInfo, c.LogLevel)
	assert.Equal(t, 24*time.Hour, c.JWTMaxLifetime)
}

func TestLoadReadsEveryVariable(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"ADDR":                     "127.0.0.1:9000",
		"MONGODB_URI":              "mongodb://db:27017",
		"MONGODB_DATABASE":         "so_test",
		"DATA_DIR":                 "/var/lib/so",
		"JWT_ISSUER":               "https://idp.test",
		"JWT_AUDIENCE":             "gateway, mobile ,",
		"JWT_JWKS_URL":             "https://idp.test/jwks.json",
		"JWT_JWKS_FILE":            "/etc/so/jwks.json",
		"JWT_HS256_SECRET":         "a-development-secret",
		"SEED_DEMO":                "false",
		"REQUEST_TIMEOUT":          "3s",
		"MAX_BODY_BYTES":           "4096",
		"WS_ALLOWED_ORIGINS":       "https://app.test,https://admin.test",
		"RATE_LIMIT_PER_ADDRESS":   "500",
		"RATE_LIMIT_PER_PRINCIPAL": "12.5",
		"LOG_LEVEL":                "debug",
		"JWT_MAX_LIFETIME":         "90m",
	}))
	require.NoError(t, err)

	assert.Equal(t, "127.0.0.1:9000", c.Addr)
	assert.Equal(t, "so_test", c.MongoDatabase)
	assert.Equal(t, []string{"gateway", "mobile"}, c.JWTAudiences)
	assert.Equal(t, []byte("a-development-secret"), c.JWTHS256Secret)
	assert.True(t, c.HasJWKS())
	assert.False(t, c.SeedDemo)
	assert.Equal(t, 3*time.Second, c.RequestTimeout)
	assert.EqualValues(t, 4096, c.MaxBodyBytes)
	assert.InDelta(t, 500, c.RateLimitPerAddress, 0)
	assert.InDelta(t, 12.5, c.RateLimitPerPrincipal, 0)
	assert.Equal(t, []string{"https://app.test", "https://admin.test"}, c.WSAllowedOrigins)
	assert.Equal(t, slog.LevelDebug, c.LogLevel)
	assert.Equal(t, 90*time.Minute, c.JWTMaxLifetime)
	assert.Contains(t, c.String(), "JWT_MAX_LIFETIME=1h30m0s")
}

func TestLoadProduction(t *testing.T) {
	prod := func(extra map[string]string) map[string]string {
		m := map[string]string{
			"APP_ENV": "production", "JWT_JWKS_URL": "https://idp.test/jwks.json",
			"JWT_ISSUER": "https://idp.test/", "JWT_AUDIENCE": "second-opinion-gateway",
			"OPINION_SIGNING_KEY_FILE": "/etc/so/opinion-signing-key.pem", "DATA_KEY_FILE": "/etc/so/data-key.txt",
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	t.Run("production with a JWKS source loads, seeding off", func(t *testing.T) {
		c, err := config.Load(env(prod(map[string]string{"SEED_DEMO": "true"})))
		require.NoError(t, err)
		assert.True(t, c.Production())
		assert.False(t, c.SeedDemo, "seeding is forced off in production")
	})

	tests := []struct {
		name string
		env  map[string]string
	}{
		{"production refuses an HS256 secret", prod(map[string]string{"JWT_HS256_SECRET": "0123456789abcdef0123456789abcdef"})},
		{"production requires a JWKS source", map[string]string{"APP_ENV": "production"}},
		{"production refuses a plain-http JWKS URL", prod(map[string]string{"JWT_JWKS_URL": "http://idp.test/jwks.json"})},
		{"production refuses to start without DATA_KEY_FILE", prod(map[string]string{"DATA_KEY_FILE": ""})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(tt.env))
			assert.Error(t, err)
		})
	}

	// Finding 7: a production gateway without iss and aud accepted a token
	// its keys had signed for any other relying party.
	refusals := []struct {
		name, wants string
		env         map[string]string
	}{
		{"production refuses the operator's JWKS URL without JWT_ISSUER", "JWT_ISSUER", prod(map[string]string{"JWT_ISSUER": ""})},
		{"production refuses the operator's JWKS URL without JWT_AUDIENCE", "JWT_AUDIENCE", prod(map[string]string{"JWT_AUDIENCE": " , "})},
		{"production refuses the operator's JWKS file without JWT_ISSUER and JWT_AUDIENCE", "JWT_ISSUER",
			map[string]string{"APP_ENV": "production", "JWT_JWKS_FILE": "/etc/so/jwks.json"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(tt.env))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wants)
		})
	}

	t.Run("a JWKS file with issuer and audience is enough in production", func(t *testing.T) {
		_, err := config.Load(env(map[string]string{
			"APP_ENV": "production", "JWT_JWKS_FILE": "/etc/so/jwks.json",
			"JWT_ISSUER": "https://idp.test/", "JWT_AUDIENCE": "second-opinion-gateway",
			"OPINION_SIGNING_KEY_FILE": "/etc/so/opinion-signing-key.pem", "DATA_KEY_FILE": "/etc/so/data-key.txt",
		}))
		assert.NoError(t, err)
	})

	t.Run("a trust file alone needs no JWT_ISSUER: its entries carry their own", func(t *testing.T) {
		_, err := config.Load(env(map[string]string{"APP_ENV": "production", "JWT_TRUST_FILE": "/etc/so/trust.json",
			"OPINION_SIGNING_KEY_FILE": "/etc/so/opinion-signing-key.pem", "DATA_KEY_FILE": "/etc/so/data-key.txt"}))
		assert.NoError(t, err)
	})

	t.Run("production requires the opinion-signing key", func(t *testing.T) {
		_, err := config.Load(env(prod(map[string]string{"OPINION_SIGNING_KEY_FILE": ""})))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "OPINION_SIGNING_KEY_FILE")
	})
}

func TestLoadRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"an unknown APP_ENV is refused", map[string]string{"APP_ENV": "staging"}},
		{"a SEED_DEMO that is not a boolean is refused", map[string]string{"SEED_DEMO": "maybe"}},
		{"a REQUEST_TIMEOUT that is not a duration is refused", map[string]string{"REQUEST_TIMEOUT": "10"}},
		{"a negative MAX_BODY_BYTES is refused", map[string]string{"MAX_BODY_BYTES": "-1"}},
		{"an unknown LOG_LEVEL is refused", map[string]string{"LOG_LEVEL": "loud"}},
		{"a RATE_LIMIT_PER_ADDRESS that is not a number is refused", map[string]string{"RATE_LIMIT_PER_ADDRESS": "fast"}},
		{"a zero RATE_LIMIT_PER_PRINCIPAL is refused", map[string]string{"RATE_LIMIT_PER_PRINCIPAL": "0"}},
		{"a MONGODB_URI of another scheme is refused", map[string]string{"MONGODB_URI": "postgres://u:p@db"}},
		{"a JWKS URL that is not http(s) is refused", map[string]string{"JWT_JWKS_URL": "file:///etc/jwks.json"}},
		{"a JWT_MAX_LIFETIME that is not a duration is refused", map[string]string{"JWT_MAX_LIFETIME": "24"}},
		{"a zero JWT_MAX_LIFETIME is refused", map[string]string{"JWT_MAX_LIFETIME": "0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(env(tt.env))
			assert.Error(t, err)
		})
	}

	t.Run("an error about the URI does not echo its password", func(t *testing.T) {
		_, err := config.Load(env(map[string]string{"MONGODB_URI": "postgres://u:hunter2@db"}))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "hunter2")
	})
}

func TestStringMasksSecrets(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"MONGODB_URI":      "mongodb://app:s3cr3t-pw@db1:27017,db2:27017/so?replicaSet=rs0&authSource=admin",
		"JWT_HS256_SECRET": "super-secret-dev-key-0123456789ab",
	}))
	require.NoError(t, err)

	for name, s := range map[string]string{
		"String":   c.String(),
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", c),
		"%#v":      fmt.Sprintf("%#v", c),
		"LogValue": c.LogValue().String(),
	} {
		t.Run(name+" hides the HS256 secret and the URI password", func(t *testing.T) {
			assert.NotContains(t, s, "super-secret-dev-key")
			assert.NotContains(t, s, "s3cr3t-pw")
			assert.Contains(t, s, "JWT_HS256_SECRET=***")
			assert.Contains(t, s, "MONGODB_URI=mongodb://app:***@db1:27017,db2:27017/so?replicaSet=rs0&authSource=admin")
		})
	}

	t.Run("a URI without a password is shown as is", func(t *testing.T) {
		c, err := config.Load(env(map[string]string{"MONGODB_URI": "mongodb+srv://cluster0.example.net/so"}))
		require.NoError(t, err)
		assert.Contains(t, c.String(), "MONGODB_URI=mongodb+srv://cluster0.example.net/so")
		assert.Contains(t, c.String(), "JWT_HS256_SECRET= ")
	})
}

func TestLoadWebhookSettings(t *testing.T) {
	env := map[string]string{"WEBHOOK_TIMEOUT": "3s", "WEBHOOK_BACKOFF": "1m", "WEBHOOK_MAX_ATTEMPTS": "5"}
	c, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.WebhookTimeout != 3*time.Second || c.WebhookBackoff != time.Minute || c.WebhookMaxAttempts != 5 {
		t.Fatalf("got %v %v %d", c.WebhookTimeout, c.WebhookBackoff, c.WebhookMaxAttempts)
	}
	env["WEBHOOK_MAX_ATTEMPTS"] = "0"
	if _, err := config.Load(func(k string) string { return env[k] }); err == nil {
		t.Fatal("0 attempts accepted")
	}
}

func TestMetricsAddrIsAListenerApartFromADDR(t *testing.T) {
	c, err := config.Load(env(map[string]string{"METRICS_ADDR": "127.0.0.1:9100"}))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9100", c.MetricsAddr)
	assert.Contains(t, c.String(), "METRICS_ADDR=127.0.0.1:9100")

	_, err = config.Load(env(map[string]string{"METRICS_ADDR": "9100"}))
	assert.ErrorContains(t, err, "METRICS_ADDR")
	_, err = config.Load(env(map[string]string{"ADDR": ":8080", "METRICS_ADDR": ":8080"}))
	assert.ErrorContains(t, err, "METRICS_ADDR must differ from ADDR")
}

func TestLoadDocuments(t *testing.T) {
	t.Run("uploads are capped at 50 MiB and stored under DATA_DIR by default", func(t *testing.T) {
		c, err := config.Load(env(nil))
		require.NoError(t, err)
		assert.Equal(t, int64(50<<20), c.MaxUploadBytes)
		assert.Empty(t, c.BlobURL)
		assert.Empty(t, c.DataKeyFile)
	})
	t.Run("MAX_UPLOAD_BYTES, BLOB_URL and DATA_KEY_FILE are read", func(t *testing.T) {
		c, err := config.Load(env(map[string]string{"MAX_UPLOAD_BYTES": "1024", "BLOB_URL": "s3://bucket/docs", "DATA_KEY_FILE": "/k",
			"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}))
		require.NoError(t, err)
		assert.Equal(t, int64(1024), c.MaxUploadBytes)
		assert.Equal(t, "s3://bucket/docs", c.BlobURL)
		assert.Equal(t, "/k", c.DataKeyFile)
	})
	for _, bad := range []map[string]string{{"MAX_UPLOAD_BYTES": "0"}, {"MAX_UPLOAD_BYTES": "lots"}, {"BLOB_URL": "ftp://x"}} {
		_, err := config.Load(env(bad))
		assert.Error(t, err, "%v", bad)
	}
}

// Audit rows are kept six years by default (HIPAA), longer if asked, never
// less.
func TestAuditRetention(t *testing.T) {
	c, err := config.Load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, 2192, c.AuditRetentionDays)
	c, err = config.Load(env(map[string]string{"AUDIT_RETENTION_DAYS": "3653"}))
	require.NoError(t, err)
	assert.Equal(t, 3653, c.AuditRetentionDays)
	assert.Contains(t, c.String(), "AUDIT_RETENTION_DAYS=3653")
	for _, bad := range []string{"1095", "2191", "0", "-1", "six years", "40000"} {
		_, err := config.Load(env(map[string]string{"AUDIT_RETENTION_DAYS": bad}))
		assert.ErrorContains(t, err, "AUDIT_RETENTION_DAYS", bad)
	}
}

func TestS3Settings(t *testing.T) {
	creds := func(extra map[string]string) map[string]string {
		m := map[string]string{"BLOB_URL": "s3://records/docs", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	t.Run("an S3-compatible endpoint is read, path-style by default, and the secret is masked", func(t *testing.T) {
		c, err := config.Load(env(creds(map[string]string{"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"})))
		require.NoError(t, err)
		assert.Equal(t, config.S3{Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI", PathStyle: true}, c.S3)
		assert.NotContains(t, c.String(), "wJalrXUtnFEMI")
		assert.Contains(t, c.String(), "AWS_SECRET_ACCESS_KEY=***")
	})
	t.Run("production accepts an https endpoint", func(t *testing.T) {
		_, err := config.Load(env(creds(map[string]string{"AWS_ENDPOINT_URL_S3": "https://minio:9000", "APP_ENV": "production",
			"JWT_JWKS_URL": "https://idp.test/jwks.json", "JWT_ISSUER": "https://idp.test/", "JWT_AUDIENCE": "gw",
			"OPINION_SIGNING_KEY_FILE": "/k.pem", "DATA_KEY_FILE": "/k.txt"})))
		require.NoError(t, err)
	})
	t.Run("AWS itself is addressed by host name in us-east-1 unless told otherwise", func(t *testing.T) {
		c, err := config.Load(env(creds(nil)))
		require.NoError(t, err)
		assert.False(t, c.S3.PathStyle)
		assert.Equal(t, "us-east-1", c.S3.Region)
		c, err = config.Load(env(creds(map[string]string{"BLOB_S3_PATH_STYLE": "true", "AWS_ENDPOINT_URL": "https://s3.example"})))
		require.NoError(t, err)
		assert.True(t, c.S3.PathStyle)
		assert.Equal(t, "https://s3.example", c.S3.Endpoint)
	})
	for name, bad := range map[string]map[string]string{
		"an s3 BLOB_URL without credentials is refused":     {"BLOB_URL": "s3://records"},
		"an s3 BLOB_URL without a bucket is refused":        creds(map[string]string{"BLOB_URL": "s3:///docs"}),
		"an endpoint that is not an http(s) URL is refused": creds(map[string]string{"AWS_ENDPOINT_URL_S3": "ftp://store"}),
		"a path style that is not a boolean is refused":     creds(map[string]string{"BLOB_S3_PATH_STYLE": "maybe"}),
		"production refuses a plain-http endpoint": creds(map[string]string{"AWS_ENDPOINT_URL_S3": "http://minio:9000", "APP_ENV": "production",
			"JWT_JWKS_URL": "https://idp.test/jwks.json", "JWT_ISSUER": "https://idp.test/", "JWT_AUDIENCE": "gw",
			"OPINION_SIGNING_KEY_FILE": "/k.pem", "DATA_KEY_FILE": "/k.txt"}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(env(bad))
			assert.Error(t, err)
		})
	}
}
