package graph

import "github.com/secondopinion/gateway/internal/domain"

// recordDocument is a record's document as p may see it: null for a record
// without a file, FORBIDDEN for a reviewer while RECORDS_RELEASE is not
// active (the field guard has already refused the roles that never read
// documents).
func recordDocument(p domain.Principal, rec *domain.Record) (*domain.Document, error) {
	if rec.Document == nil {
		return nil, nil
	}
	if !domain.CanReadDocument(p, rec.Document.Released) {
		return nil, domain.ErrFieldForbidden
	}
	return rec.Document, nil
}
