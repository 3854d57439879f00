package documents

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/store"
)

// A download link is /files/<token>. The token is base64url(JSON claims) "."
// base64url(HMAC-SHA256(claims)), under a key derived from the master key:
// it names the record and the principal it was issued to and expires. It is
// a bearer capability for a few minutes, never more than an hour; at
// download the principal's right is checked again as if it asked now.

// FilesPath is the route prefix of download links.
const FilesPath = "/files/"

type linkClaims struct {
	Case   string `json:"c"`
	Record string `json:"r"`
	// Report: Record is an opinion and the link serves its report.
	Report       bool     `json:"rp,omitempty"`
	Subject      string   `json:"s"`
	Org          string   `json:"o"`
	Role         string   `json:"ro"`
	SpecialistID string   `json:"sp,omitempty"`
	Scopes       []string `json:"sc,omitempty"`
	HasScopes    bool     `json:"hs,omitempty"`
	Expires      int64    `json:"e"`
}

// errBadLink is every refusal of a token: bad form, bad MAC, expired.
var errBadLink = domain.ErrNotFound("document")

// Link returns a download URL (a path on the gateway) for doc, read by p
// under p's scope, valid for ttl (DefaultLinkTTL when 0, at most
// MaxLinkTTL).
func (s *Service) Link(p domain.Principal, doc *domain.Document, ttl time.Duration) (string, error) {
	if ttl == 0 {
		ttl = DefaultLinkTTL
	}
	if ttl < time.Second || ttl > MaxLinkTTL {
		return "", domain.Errorf(domain.CodeBadUserInput, "expiresInSeconds must be from 1 to %d", int(MaxLinkTTL/time.Second))
	}
	if doc == nil {
		return "", domain.ErrFieldForbidden
	}
	if doc.Report {
		// An opinion's report: the rules of the opinion's content.
		if err := p.Require(domain.ScopeOpinionsRead); err != nil {
			return "", err
		}
		if !domain.CanRead(p, domain.GroupOpinionContent) {
			return "", domain.ErrFieldForbidden
		}
	} else {
		if err := p.Require(domain.ScopeCasesRead); err != nil {
			return "", err
		}
		if !domain.CanReadDocument(p, doc.Released) {
			return "", domain.ErrFieldForbidden
		}
	}
	c := linkClaims{
		Case: doc.CaseID, Record: doc.RecordID, Report: doc.Report, Subject: p.Subject, Org: p.Org, Role: string(p.Role),
		SpecialistID: p.SpecialistID, HasScopes: p.TokenScopes != nil, Expires: s.now().Add(ttl).Unix(),
	}
	for _, sc := range p.TokenScopes {
		c.Scopes = append(c.Scopes, string(sc))
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return FilesPath + payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), nil
}

func (s *Service) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.linkKey)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// verify checks a token's MAC and expiry and returns the principal and
// record it names.
func (s *Service) verify(token string) (domain.Principal, linkClaims, error) {
	var c linkClaims
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 4096 {
		return domain.Principal{}, c, errBadLink
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return domain.Principal{}, c, errBadLink
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(body, &c) != nil {
		return domain.Principal{}, c, errBadLink
	}
	if s.now().Unix() >= c.Expires {
		return domain.Principal{}, c, errBadLink
	}
	p := domain.Principal{Subject: c.Subject, Org: c.Org, Role: domain.Role(c.Role), SpecialistID: c.SpecialistID}
	if c.HasScopes {
		p.TokenScopes = []domain.Scope{}
		for _, sc := range c.Scopes {
			p.TokenScopes = append(p.TokenScopes, domain.Scope(sc))
		}
	}
	if !p.Role.Valid() {
		return domain.Principal{}, c, errBadLink
	}
	return p, c, nil
}

// Download is an open document: its metadata and its decrypted bytes.
type Download struct {
	CaseID   string
	RecordID string
	// PatientID is whose data it is (the member key), for the audit and
	// the member's access log.
	PatientID   string
	ContentType string
	SizeBytes   int
	// Body streams the plaintext; each chunk is authenticated before it is
	// returned. Close it.
	Body io.ReadCloser
}

// LinkTarget is who a genuine link was issued to and what it names.
type LinkTarget struct {
	Principal domain.Principal
	CaseID    string
	RecordID  string
	// Report: RecordID is an opinion, and the link its report.
	Report bool
}

// Open verifies a link's token and, when the principal it names may still
// read the document now (same scope and consent rules as when it was
// issued), opens the document. Any refusal is NOT_FOUND; the target is
// returned whenever the token itself was genuine and current, for the audit.
func (s *Service) Open(ctx context.Context, token string) (*Download, *LinkTarget, error) {
	p, c, err := s.verify(token)
	if err != nil {
		return nil, nil, err
	}
	target := &LinkTarget{Principal: p, CaseID: c.Case, RecordID: c.Record, Report: c.Report}
	if c.Report {
		dl, err := s.openReport(ctx, p, c)
		return dl, target, err
	}
	dl, err := s.open(ctx, p, c)
	return dl, target, err
}

// openReport renders the report of the opinion a link names, when the
// principal may still read that opinion's content now.
func (s *Service) openReport(ctx context.Context, p domain.Principal, c linkClaims) (*Download, error) {
	r, err := s.wf.OpinionReport(ctx, p, c.Record)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) { // refused, missing, a draft: one answer
			return nil, errBadLink
		}
		return nil, err
	}
	if r.Document.CaseID != c.Case {
		return nil, errBadLink
	}
	return &Download{
		CaseID: c.Case, RecordID: c.Record, PatientID: r.PatientID, ContentType: r.Document.ContentType, SizeBytes: r.Document.SizeBytes,
		Body: io.NopCloser(bytes.NewReader(r.PDF)),
	}, nil
}

func (s *Service) open(ctx context.Context, p domain.Principal, c linkClaims) (*Download, error) {
	if err := p.Require(domain.ScopeCasesRead); err != nil {
		return nil, errBadLink
	}
	cs, err := s.st.CaseWith(ctx, p, c.Case, store.CaseView{Clinical: true})
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) && de.Code == domain.CodeNotFound {
			return nil, errBadLink
		}
		return nil, err
	}
	if !domain.CanReadDocument(p, cs.ConsentActive(domain.ConsentRecordsRelease)) || cs.Clinical == nil {
		return nil, errBadLink
	}
	var doc *domain.Document
	for _, r := range cs.Clinical.Records {
		if r.ID == c.Record {
			doc = r.Document
		}
	}
	if doc == nil {
		return nil, errBadLink
	}
	dk, err := s.keys.Unwrap(keys.Wrapped{KeyID: doc.KeyID, Key: doc.WrappedKey})
	if err != nil {
		return nil, err
	}
	f, err := s.blobs.Get(ctx, doc.BlobKey)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, errBadLink
	}
	if err != nil {
		return nil, err
	}
	body, err := decrypt(dk, f, doc.SizeBytes)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &Download{
		CaseID: c.Case, RecordID: c.Record, PatientID: cs.PatientID, ContentType: doc.ContentType, SizeBytes: doc.SizeBytes,
		Body: body,
	}, nil
}

// decrypt returns the plaintext of f, a blob's file whose plaintext the
// record says is size bytes. A file that can be read at any offset and
// knows its size (the directory store's) is decrypted ahead by a worker a
// CPU (aheadReader), after its size is authenticated and found to be the
// record's; any other (an S3 object's body) one chunk after another.
// Closing the body closes f.
func decrypt(dk *keys.DataKey, f io.ReadCloser, size int) (io.ReadCloser, error) {
	type statReaderAt interface {
		io.ReaderAt
		Stat() (os.FileInfo, error)
	}
	if ra, ok := f.(statReaderAt); ok {
		fi, err := ra.Stat()
		if err != nil {
			return nil, err
		}
		plain, n, err := dk.DecryptAt(ra, fi.Size())
		if err != nil {
			return nil, err
		}
		if n != int64(size) {
			return nil, fmt.Errorf("documents: the file holds %d bytes, its record %d", n, size)
		}
		return newAheadReader(plain, n, f.Close), nil
	}
	plain, err := dk.Decrypt(f)
	if err != nil {
		return nil, err
	}
	return readCloser{Reader: plain, Closer: f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
