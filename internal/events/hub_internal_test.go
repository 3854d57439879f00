package events

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

func TestAnOlderEventArrivingAfterARevocationIsNotShownToThePartner(t *testing.T) {
	h := NewHub(nil, 0, nil)
	partner := domain.Principal{Subject: "u", Role: domain.RolePartner, Org: "net-1"}
	member := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pch := h.Subscribe(ctx, partner, "")
	mch := h.Subscribe(ctx, member, "")

	base := store.CaseEventRecord{CaseID: "c1", PatientID: "ins:m-1", SpecialistOrgID: "net-1"}
	revoked := base
	revoked.Seq, revoked.Version, revoked.Type, revoked.IntlConsent = 1, 3, "CONSENT_REVOKED", false
	review := base
	review.Seq, review.Version, review.Type, review.IntlConsent = 2, 2, "STATUS_CHANGED", true

	h.dispatch(&revoked) // the newer write got the lower sequence number
	h.dispatch(&review)

	assert.Len(t, pch, 0, "the partner sees neither the revocation nor the older review")
	assert.Len(t, mch, 2, "the member sees both")
}
