package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
)

// HIPAA Safe Harbor for age: a de-identified read never shows the birth
// year of a patient who may be 90 or more; every role reads the age band.
func TestAPartnerReadsNoBirthYearAtNinetyOrMore(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	partner := domain.Principal{Subject: "u", Role: domain.RolePartner, Org: "net"}
	coordinator := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	for _, c := range []struct {
		name       string
		born       time.Time
		band       string
		partnerSee bool
	}{
		{"aged 89 all year", time.Date(1937, 12, 31, 0, 0, 0, 0, time.UTC), "80-89", true},
		{"turning 90 this year, birthday past", time.Date(1936, 1, 15, 0, 0, 0, 0, time.UTC), "90+", false},
		{"turning 90 later this year", time.Date(1936, 12, 30, 0, 0, 0, 0, time.UTC), "90+", false},
		{"aged 101", time.Date(1925, 6, 1, 0, 0, 0, 0, time.UTC), "90+", false},
		{"a child", time.Date(2015, 6, 1, 0, 0, 0, 0, time.UTC), "0-17", true},
		{"aged 18", time.Date(2008, 1, 1, 0, 0, 0, 0, time.UTC), "18-29", true},
		{"aged 45", time.Date(1981, 1, 1, 0, 0, 0, 0, time.UTC), "40-49", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A partner's read never fetches the date of birth (projection).
			deid := toPatient(&patientDoc{BirthYear: c.born.Year(), Sex: "FEMALE"}, partner, "pt_x", now)
			assert.Equal(t, c.band, deid.AgeBand)
			if c.partnerSee {
				require.NotNil(t, deid.BirthYear)
				assert.Equal(t, c.born.Year(), *deid.BirthYear)
			} else {
				assert.Nil(t, deid.BirthYear, "Safe Harbor: no birth year at 90+")
			}
			full := toPatient(&patientDoc{BirthYear: c.born.Year(), DateOfBirth: sealTime(c.born), Sex: "FEMALE"}, coordinator, "k", now)
			require.NotNil(t, full.BirthYear, "a role that reads the date of birth keeps the year")
			if c.name == "turning 90 later this year" {
				assert.Equal(t, "80-89", full.AgeBand, "from the date of birth the age is exact")
			} else {
				assert.Equal(t, c.band, full.AgeBand)
			}
		})
	}
}
