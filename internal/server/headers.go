package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
)

// withSecurityHeaders sets what every response carries: no MIME sniffing
// (a JSON error echoing input must never run as HTML), no Referer leaving
// with a signed link in it, and no caching anywhere of answers that hold
// PHI or tokens.
func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

var (
	assetRe       = regexp.MustCompile(`(?s)<(script|link)\b[^>]*?\b(?:src|href)="([^"]+)"`)
	inlineScripts = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	inlineStyles  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
)

// withGraphiQLPolicy serves the GraphiQL page under a Content-Security-Policy
// that allows exactly what the page loads: the scripts and stylesheets it
// names (gqlgen pins them on cdn.jsdelivr.net, with SRI) and its own inline
// script and style, by hash. They are read from the page itself, rendered
// once, so a gqlgen upgrade that moves an asset cannot silently widen or
// break the policy. Requests go to this origin only (GraphQL over HTTP and
// its websocket).
func withGraphiQLPolicy(page http.Handler) http.Handler {
	rec := &pageRecorder{header: http.Header{}}
	page.ServeHTTP(rec, &http.Request{Method: http.MethodGet, Header: http.Header{}})
	html := rec.body.String()
	var scripts, styles []string
	for _, m := range assetRe.FindAllStringSubmatch(html, -1) {
		if m[1] == "script" {
			scripts = append(scripts, m[2])
		} else {
			styles = append(styles, m[2])
		}
	}
	for _, m := range inlineScripts.FindAllStringSubmatch(html, -1) {
		scripts = append(scripts, cspHash(m[1]))
	}
	for _, m := range inlineStyles.FindAllStringSubmatch(html, -1) {
		styles = append(styles, cspHash(m[1]))
	}
	fixed := "default-src 'none'; script-src " + strings.Join(scripts, " ") +
		"; style-src " + strings.Join(styles, " ") +
		"; img-src 'self' data:; font-src data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The websocket URL is built from the page's own host; name it, as
		// older browsers do not let 'self' cover ws: and wss:.
		connect := "connect-src 'self'"
		if host := r.Host; host != "" && !strings.ContainsAny(host, " ;,'\"") {
			connect += " ws://" + host + " wss://" + host
		}
		w.Header().Set("Content-Security-Policy", fixed+"; "+connect)
		page.ServeHTTP(w, r)
	})
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// pageRecorder captures a page rendered once at start.
type pageRecorder struct {
	header http.Header
	body   bytes.Buffer
}

func (p *pageRecorder) Header() http.Header         { return p.header }
func (p *pageRecorder) Write(b []byte) (int, error) { return p.body.Write(b) }
func (p *pageRecorder) WriteHeader(int)             {}
