// Package config reads the gateway's configuration from environment
// variables: defaults, validation, and a String that masks secrets.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/secondopinion/gateway/internal/audit"
)

// The environments APP_ENV accepts.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Defaults.
const (
	DefaultAddr           = ":8080"
	DefaultDatabase       = "secondopinion"
	DefaultDataDir        = "./data"
	DefaultRequestTimeout = 10 * time.Second
	DefaultMaxBodyBytes   = 1 << 20
	DefaultLogLevel       = "info"
	DefaultJWTMaxLifetime = 24 * time.Hour
	// DefaultOperatorOrg is OPERATOR_ORG's default.
	DefaultOperatorOrg    = "operator"
	DefaultMaxUploadBytes = 50 << 20
	// DevDataKeyFile is where development keeps its generated master key,
	// under DATA_DIR.
	DevDataKeyFile = "data-key.txt"
	// DefaultS3Region is AWS_REGION's default for an s3:// BLOB_URL.
	DefaultS3Region = "us-east-1"
)

// mask replaces secrets in String.
const mask = "***"

// orgID is domain.ValidOrgID's pattern (config imports nothing of ours).
var orgID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// Config is the gateway's configuration.
type Config struct {
	// Addr is the listen address (ADDR).
	Addr string
	// MetricsAddr is a separate listener for /metrics (METRICS_ADDR). When
	// set, /metrics is served only there; in production it is never served
	// on ADDR, so production without it has no metrics endpoint.
	MetricsAddr string
	// Env is development or production (APP_ENV).
	Env string
	// MongoURI points at MongoDB (MONGODB_URI); empty starts the embedded
	// store.
	MongoURI string
	// OperatorOrg is the operator's own organisation (OPERATOR_ORG):
	// registered at start, the org coordinator tokens name.
	OperatorOrg string
	// MongoDatabase is the database name (MONGODB_DATABASE).
	MongoDatabase string
	// DataDir holds the embedded store's files (DATA_DIR).
	DataDir string
	// OpinionSigningKeyFile is the PEM file whose first private key signs
	// delivered opinions; later keys stay published for verification
	// (OPINION_SIGNING_KEY_FILE). Required in production; development
	// creates DATA_DIR/opinion-signing-key.pem when unset.
	OpinionSigningKeyFile string
	// JWTIssuer is the expected iss claim (JWT_ISSUER); empty is not checked.
	JWTIssuer string
	// JWTAudiences are the accepted aud values (JWT_AUDIENCE,
	// comma-separated); empty is not checked.
	JWTAudiences []string
	// JWTJWKSURL is the issuer's key set URL (JWT_JWKS_URL).
	JWTJWKSURL string
	// JWTJWKSFile is a key set file (JWT_JWKS_FILE).
	JWTJWKSFile string
	// JWTTrustFile lists several trusted issuers, each with its keys and
	// what it may assert (JWT_TRUST_FILE); the single-issuer variables stay
	// the simple case and may be combined with it.
	JWTTrustFile string
	// TrustedDocumentsFile binds partner clients to allow-lists of
	// operations (TRUSTED_DOCUMENTS_FILE).
	TrustedDocumentsFile string
	// JWTMaxLifetime is the longest a token may live, from its iat (or from
	// now without one) to its exp (JWT_MAX_LIFETIME).
	JWTMaxLifetime time.Duration
	// JWTHS256Secret is a development-only shared secret (JWT_HS256_SECRET).
	// With neither it nor a JWKS source in development, the server makes a
	// random one.
	JWTHS256Secret []byte
	// SeedDemo seeds demo data into an empty database (SEED_DEMO); always
	// false in production.
	SeedDemo bool
	// RequestTimeout bounds one request (REQUEST_TIMEOUT).
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a request body (MAX_BODY_BYTES).
	MaxBodyBytes int64
	// RateLimitPerAddress is requests per second from one client address
	// (RATE_LIMIT_PER_ADDRESS), RateLimitPerPrincipal from one sub+org
	// (RATE_LIMIT_PER_PRINCIPAL); each allows a burst of twice that. Zero
	// keeps the gateway's defaults.
	RateLimitPerAddress   float64
	RateLimitPerPrincipal float64
	// WSAllowedOrigins are the origins allowed to open a websocket
	// (WS_ALLOWED_ORIGINS, comma-separated); empty means same-origin only.
	WSAllowedOrigins []string
	// WebhookTimeout bounds one webhook delivery attempt (WEBHOOK_TIMEOUT;
	// 0: the dispatcher's default, 5s).
	WebhookTimeout time.Duration
	// WebhookBackoff is the wait after a first failed delivery, doubling
	// after each further one (WEBHOOK_BACKOFF; 0: default 30s).
	WebhookBackoff time.Duration
	// WebhookMaxAttempts before a delivery is dead-lettered
	// (WEBHOOK_MAX_ATTEMPTS; 0: default 12).
	WebhookMaxAttempts int
	// WSMaxSubscriptionsPerConnection and WSMaxSubscriptionsPerPrincipal
	// cap active subscriptions per socket and per principal
	// (WS_MAX_SUBSCRIPTIONS_PER_CONNECTION, _PER_PRINCIPAL; 0: defaults 20
	// and 50).
	WSMaxSubscriptionsPerConnection int
	WSMaxSubscriptionsPerPrincipal  int
	// DataKeyFile holds the master key(s) that wrap documents' data keys
	// (DATA_KEY_FILE). Required in production; development generates one
	// at DATA_DIR/data-key.txt when unset.
	DataKeyFile string
	// BlobURL says where documents are stored (BLOB_URL): empty or
	// file://dir for a directory (default DATA_DIR/blobs), s3://bucket/prefix
	// for an S3-compatible store.
	BlobURL string
	// MaxUploadBytes caps one uploaded file (MAX_UPLOAD_BYTES).
	MaxUploadBytes int64
	// AuditRetentionDays is how long audit rows are kept
	// (AUDIT_RETENTION_DAYS): at least six years (HIPAA), the default;
	// older days are pruned whole, once verified, leaving a signed
	// checkpoint (internal/audit/retention.go).
	AuditRetentionDays int
	// S3 reaches the bucket of BLOB_URL=s3://bucket/prefix, with the
	// standard AWS_* variables.
	S3 S3
	// LogLevel is the slog level (LOG_LEVEL: debug, info, warn, error).
	LogLevel slog.Level
}

// S3 is how an S3-compatible BLOB_URL is reached.
type S3 struct {
	// Endpoint is the store's base URL (AWS_ENDPOINT_URL_S3, else
	// AWS_ENDPOINT_URL); empty means AWS itself.
	Endpoint string
	// Region is the bucket's region (AWS_REGION, else AWS_DEFAULT_REGION;
	// default us-east-1).
	Region string
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// PathStyle puts the bucket in the path rather than in the host name
	// (BLOB_S3_PATH_STYLE; default true with an endpoint, false without).
	PathStyle bool
}

// Production reports whether the gateway runs in production.
func (c Config) Production() bool { return c.Env == EnvProduction }

// HasJWKS reports whether a JWKS URL or file is configured.
func (c Config) HasJWKS() bool {
	return c.JWTJWKSURL != "" || c.JWTJWKSFile != "" || c.JWTTrustFile != ""
}

// Load reads the configuration through getenv (os.Getenv in main) and
// validates it. Every problem found is reported, joined.
func Load(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{
		Addr:                  or(get("ADDR"), DefaultAddr),
		MetricsAddr:           get("METRICS_ADDR"),
		Env:                   or(get("APP_ENV"), EnvDevelopment),
		MongoURI:              get("MONGODB_URI"),
		MongoDatabase:         or(get("MONGODB_DATABASE"), DefaultDatabase),
		OperatorOrg:           or(get("OPERATOR_ORG"), DefaultOperatorOrg),
		DataDir:               or(get("DATA_DIR"), DefaultDataDir),
		OpinionSigningKeyFile: get("OPINION_SIGNING_KEY_FILE"),
		JWTIssuer:             get("JWT_ISSUER"),
		JWTAudiences:          list(get("JWT_AUDIENCE")),
		JWTJWKSURL:            get("JWT_JWKS_URL"),
		JWTJWKSFile:           get("JWT_JWKS_FILE"),
		JWTTrustFile:          get("JWT_TRUST_FILE"),
		TrustedDocumentsFile:  get("TRUSTED_DOCUMENTS_FILE"),
		JWTMaxLifetime:        DefaultJWTMaxLifetime,
		RequestTimeout:        DefaultRequestTimeout,
		MaxBodyBytes:          DefaultMaxBodyBytes,
		WSAllowedOrigins:      list(get("WS_ALLOWED_ORIGINS")),
		DataKeyFile:           get("DATA_KEY_FILE"),
		BlobURL:               get("BLOB_URL"),
		MaxUploadBytes:        DefaultMaxUploadBytes,
		AuditRetentionDays:    audit.MinRetentionDays,
		S3: S3{
			Endpoint:        or(get("AWS_ENDPOINT_URL_S3"), get("AWS_ENDPOINT_URL")),
			Region:          or(get("AWS_REGION"), or(get("AWS_DEFAULT_REGION"), DefaultS3Region)),
			AccessKeyID:     get("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    getenv("AWS_SESSION_TOKEN"),
		},
	}
	// The secret is taken as is: spaces may be part of it.
	if s := getenv("JWT_HS256_SECRET"); s != "" {
		c.JWTHS256Secret = []byte(s)
	}

	var errs []error
	switch c.Env {
	case EnvDevelopment, EnvProduction:
	default:
		errs = append(errs, fmt.Errorf("APP_ENV must be %q or %q, not %q", EnvDevelopment, EnvProduction, c.Env))
	}

	c.SeedDemo = !c.Production()
	if s := get("SEED_DEMO"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("SEED_DEMO: %q is not a boolean", s))
		} else if !c.Production() {
			c.SeedDemo = b
		}
	}

	if s := get("REQUEST_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("REQUEST_TIMEOUT: %q is not a positive duration", s))
		} else {
			c.RequestTimeout = d
		}
	}
	if s := get("JWT_MAX_LIFETIME"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("JWT_MAX_LIFETIME: %q is not a positive duration", s))
		} else {
			c.JWTMaxLifetime = d
		}
	}
	for name, dst := range map[string]*time.Duration{"WEBHOOK_TIMEOUT": &c.WebhookTimeout, "WEBHOOK_BACKOFF": &c.WebhookBackoff} {
		if s := get(name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration", name, s))
			} else {
				*dst = d
			}
		}
	}
	if s := get("WEBHOOK_MAX_ATTEMPTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			errs = append(errs, fmt.Errorf("WEBHOOK_MAX_ATTEMPTS: %q is not a number from 1 to 100", s))
		} else {
			c.WebhookMaxAttempts = n
		}
	}
	for name, dst := range map[string]*int{"WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": &c.WSMaxSubscriptionsPerConnection, "WS_MAX_SUBSCRIPTIONS_PER_PRINCIPAL": &c.WSMaxSubscriptionsPerPrincipal} {
		if s := get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 10_000 {
				errs = append(errs, fmt.Errorf("%s: %q is not a number from 1 to 10000", name, s))
			} else {
				*dst = n
			}
		}
	}
	if s := get("MAX_BODY_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("MAX_BODY_BYTES: %q is not a positive integer", s))
		} else {
			c.MaxBodyBytes = n
		}
	}
	if s := get("MAX_UPLOAD_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n > 5<<30 {
			errs = append(errs, fmt.Errorf("MAX_UPLOAD_BYTES: %q is not a positive integer up to 5 GiB", s))
		} else {
			c.MaxUploadBytes = n
		}
	}
	if s := get("AUDIT_RETENTION_DAYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < audit.MinRetentionDays || n > 100*366 {
			errs = append(errs, fmt.Errorf("AUDIT_RETENTION_DAYS: %q is not a number of days from %d (six years, HIPAA) to 36600", s, audit.MinRetentionDays))
		} else {
			c.AuditRetentionDays = n
		}
	}
	if c.BlobURL != "" && !strings.HasPrefix(c.BlobURL, "file://") && !strings.HasPrefix(c.BlobURL, "s3://") {
		errs = append(errs, errors.New("BLOB_URL must be file://dir or s3://bucket/prefix"))
	}
	errs = append(errs, c.loadS3(get)...)
	for name, dst := range map[string]*float64{"RATE_LIMIT_PER_ADDRESS": &c.RateLimitPerAddress, "RATE_LIMIT_PER_PRINCIPAL": &c.RateLimitPerPrincipal} {
		if s := get(name); s != "" {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || !(f > 0 && f <= 1e6) {
				errs = append(errs, fmt.Errorf("%s: %q is not a rate from above 0 to 1000000 per second", name, s))
			} else {
				*dst = f
			}
		}
	}
	level := or(get("LOG_LEVEL"), DefaultLogLevel)
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", level))
	}

	if !orgID.MatchString(c.OperatorOrg) {
		errs = append(errs, fmt.Errorf("OPERATOR_ORG: %q is not 2 to 63 lower-case letters, digits and hyphens", c.OperatorOrg))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("METRICS_ADDR: %q is not a host:port address", c.MetricsAddr))
		} else if c.MetricsAddr == c.Addr {
			errs = append(errs, errors.New("METRICS_ADDR must differ from ADDR: metrics are kept off the public listener"))
		}
	}
	if c.MongoURI != "" && !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		// The URI may hold a password: never echo it.
		errs = append(errs, errors.New("MONGODB_URI must start with mongodb:// or mongodb+srv://"))
	}
	if c.JWTJWKSURL != "" {
		u, err := url.Parse(c.JWTJWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("JWT_JWKS_URL: %q is not an http(s) URL", c.JWTJWKSURL))
		} else if c.Production() && u.Scheme != "https" {
			errs = append(errs, errors.New("JWT_JWKS_URL must use https in production"))
		}
	}

	if c.Production() {
		if len(c.JWTHS256Secret) > 0 {
			errs = append(errs, errors.New("JWT_HS256_SECRET is for development only and must not be set in production"))
		}
		if !c.HasJWKS() {
			errs = append(errs, errors.New("production needs JWT_JWKS_URL, JWT_JWKS_FILE or JWT_TRUST_FILE"))
		}
		if c.OpinionSigningKeyFile == "" {
			errs = append(errs, errors.New("production needs OPINION_SIGNING_KEY_FILE (the key that signs delivered opinions)"))
		}
		if c.DataKeyFile == "" {
			errs = append(errs, errors.New("production needs DATA_KEY_FILE: the master key that encrypts documents at rest"))
		}
		// The operator's issuer without iss and aud would accept a token its
		// keys signed for any other relying party. (Trust-file entries are
		// held to the same when the file is loaded.)
		if c.JWTJWKSURL != "" || c.JWTJWKSFile != "" {
			if c.JWTIssuer == "" {
				errs = append(errs, errors.New("production needs JWT_ISSUER with JWT_JWKS_URL or JWT_JWKS_FILE"))
			}
			if len(c.JWTAudiences) == 0 {
				errs = append(errs, errors.New("production needs JWT_AUDIENCE with JWT_JWKS_URL or JWT_JWKS_FILE"))
			}
		}
	}

	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

// String describes the configuration for logs, with the HS256 secret and any
// password in MONGODB_URI shown as ***.
func (c Config) String() string {
	secret := ""
	if len(c.JWTHS256Secret) > 0 {
		secret = mask
	}
	fields := []string{
		"ADDR=" + c.Addr,
		"METRICS_ADDR=" + c.MetricsAddr,
		"APP_ENV=" + c.Env,
		"MONGODB_URI=" + maskURI(c.MongoURI),
		"MONGODB_DATABASE=" + c.MongoDatabase,
		"OPERATOR_ORG=" + c.OperatorOrg,
		"DATA_DIR=" + c.DataDir,
		"OPINION_SIGNING_KEY_FILE=" + c.OpinionSigningKeyFile,
		"JWT_ISSUER=" + c.JWTIssuer,
		"JWT_AUDIENCE=" + strings.Join(c.JWTAudiences, ","),
		"JWT_JWKS_URL=" + c.JWTJWKSURL,
		"JWT_JWKS_FILE=" + c.JWTJWKSFile,
		"JWT_TRUST_FILE=" + c.JWTTrustFile,
		"TRUSTED_DOCUMENTS_FILE=" + c.TrustedDocumentsFile,
		"JWT_MAX_LIFETIME=" + c.JWTMaxLifetime.String(),
		"JWT_HS256_SECRET=" + secret,
		"SEED_DEMO=" + strconv.FormatBool(c.SeedDemo),
		"REQUEST_TIMEOUT=" + c.RequestTimeout.String(),
		"MAX_BODY_BYTES=" + strconv.FormatInt(c.MaxBodyBytes, 10),
		"RATE_LIMIT_PER_ADDRESS=" + rateString(c.RateLimitPerAddress),
		"RATE_LIMIT_PER_PRINCIPAL=" + rateString(c.RateLimitPerPrincipal),
		"WS_ALLOWED_ORIGINS=" + strings.Join(c.WSAllowedOrigins, ","),
		"WEBHOOK_TIMEOUT=" + c.WebhookTimeout.String(),
		"WEBHOOK_BACKOFF=" + c.WebhookBackoff.String(),
		"WEBHOOK_MAX_ATTEMPTS=" + strconv.Itoa(c.WebhookMaxAttempts),
		"WS_MAX_SUBSCRIPTIONS_PER_CONNECTION=" + strconv.Itoa(c.WSMaxSubscriptionsPerConnection),
		"WS_MAX_SUBSCRIPTIONS_PER_PRINCIPAL=" + strconv.Itoa(c.WSMaxSubscriptionsPerPrincipal),
		"DATA_KEY_FILE=" + c.DataKeyFile,
		"BLOB_URL=" + c.BlobURL,
		"AWS_ENDPOINT_URL_S3=" + c.S3.Endpoint,
		"AWS_REGION=" + c.S3.Region,
		"AWS_ACCESS_KEY_ID=" + c.S3.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + masked(c.S3.SecretAccessKey),
		"AWS_SESSION_TOKEN=" + masked(c.S3.SessionToken),
		"BLOB_S3_PATH_STYLE=" + strconv.FormatBool(c.S3.PathStyle),
		"MAX_UPLOAD_BYTES=" + strconv.FormatInt(c.MaxUploadBytes, 10),
		"AUDIT_RETENTION_DAYS=" + strconv.Itoa(c.AuditRetentionDays),
		"LOG_LEVEL=" + c.LogLevel.String(),
	}
	return strings.Join(fields, " ")
}

// loadS3 reads BLOB_S3_PATH_STYLE and checks the S3 settings when BLOB_URL
// names a bucket.
func (c *Config) loadS3(get func(string) string) []error {
	var errs []error
	c.S3.PathStyle = c.S3.Endpoint != ""
	if s := get("BLOB_S3_PATH_STYLE"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("BLOB_S3_PATH_STYLE: %q is not true or false", s))
		}
		c.S3.PathStyle = b
	}
	if !strings.HasPrefix(c.BlobURL, "s3://") {
		return errs
	}
	if u, err := url.Parse(c.BlobURL); err != nil || u.Host == "" || u.RawQuery != "" || u.User != nil {
		errs = append(errs, errors.New("BLOB_URL: s3:// needs a bucket, as s3://bucket or s3://bucket/prefix"))
	}
	if c.S3.AccessKeyID == "" || c.S3.SecretAccessKey == "" {
		errs = append(errs, errors.New("BLOB_URL=s3://… needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
	}
	if c.S3.Endpoint != "" {
		u, err := url.Parse(c.S3.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("AWS_ENDPOINT_URL_S3: not an http(s) URL"))
		} else if c.Production() && u.Scheme != "https" {
			errs = append(errs, errors.New("AWS_ENDPOINT_URL_S3 must use https in production"))
		}
	}
	return errs
}

// masked shows a set secret as ***, an unset one as empty.
func masked(s string) string {
	if s == "" {
		return ""
	}
	return mask
}

// rateString prints a configured rate, or "default" when unset.
func rateString(r float64) string {
	if r <= 0 {
		return "default"
	}
	return strconv.FormatFloat(r, 'g', -1, 64)
}

// LogValue makes slog print the masked String, never the raw fields.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// GoString masks secrets for %#v too.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }

// maskURI hides the password in a URI's user-info. It parses by hand: a
// MongoDB URI may list several hosts, which net/url refuses.
func maskURI(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if strings.Contains(raw, "@") {
			return mask // cannot tell where a password would be
		}
		return raw
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(authority[:at], ":")
	if !hasPassword {
		return raw
	}
	return scheme + "://" + user + ":" + mask + rest[at:]
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// list splits a comma-separated value, dropping empty items.
func list(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
