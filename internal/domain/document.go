package domain

import "time"

// Document is a medical record's stored file: what the gateway detected and
// measured when it was uploaded, and where its encrypted bytes and wrapped
// data key are. The wrapped key is useless without the master key, which
// never leaves the keyring.
type Document struct {
	ContentType string
	SizeBytes   int
	SHA256      string
	UploadedAt  time.Time
	// CaseID and RecordID locate the document for its download link.
	CaseID   string
	RecordID string
	// Report marks an opinion's printable report (Opinion.reportPdf): it is
	// rendered from the delivered opinion on request and never stored, so
	// it has no blob or key; RecordID is then the opinion's id, and who may
	// read it is who may read the opinion's content.
	Report bool
	// Released is whether the case's RECORDS_RELEASE consent was active when
	// the case was read: the reviewers' gate (CanReadDocument).
	Released bool
	// BlobKey names the encrypted file in blob storage.
	BlobKey string
	// KeyID names the master key that wrapped WrappedKey.
	KeyID      string
	WrappedKey []byte
}

// CanReadDocument is who may read a record's document on a case already in
// the caller's scope (the record documents rule of the visibility table): the member, the
// coordinators, and the case's reviewers (provider, partner) only while the
// member's RECORDS_RELEASE consent is active; insurers never.
func CanReadDocument(p Principal, recordsReleased bool) bool {
	if !CanRead(p, GroupRecordDocument) {
		return false
	}
	if p.Role == RoleProvider || p.Role == RolePartner {
		return recordsReleased
	}
	return true
}

// Reviewer reports whether r reviews cases (provider or partner).
func (r Role) Reviewer() bool { return r == RoleProvider || r == RolePartner }
