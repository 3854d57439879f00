package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
)

// On FerretDB every update is a read and a whole-document write back, so
// writes that were not serialised could lose each other. These run writes to
// one document concurrently, on the store's own write path, and count what
// stuck.

func TestConcurrentLoadAdjustmentsAndProfileUpdatesAreNotLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "load")
	coordinator := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "ops"}
	for _, exact := range []bool{s.serialWrites} {
		t.Run(fmt.Sprintf("exact _id filters %v", exact), func(t *testing.T) {
			s.serialWrites = exact
			sp, err := s.UpsertSpecialist(ctx, coordinator, SpecialistInput{
				Name: "Dr Load", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "DE", OrgID: "prov-1",
			})
			require.NoError(t, err)

			// A write may give up with CONFLICT under contention (the
			// caller retries); none may be lost. So count what succeeded.
			const adjusters, renames = 12, 4
			var adjusted, renamed atomic.Int32
			succeeded := func(err error, n *atomic.Int32) {
				if err == nil {
					n.Add(1)
					return
				}
				assert.Equal(t, domain.CodeConflict, domain.ErrorCode(err), "%v", err)
			}
			var wg sync.WaitGroup
			for range adjusters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					succeeded(s.AdjustLoad(ctx, sp.ID, 1), &adjusted)
				}()
			}
			for i := range renames {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := s.UpsertSpecialist(ctx, coordinator, SpecialistInput{
						ID: sp.ID, Name: fmt.Sprintf("Dr Load %d", i), Specialties: []string{"oncology"},
						Languages: []string{"en"}, Country: "DE",
					})
					succeeded(err, &renamed)
				}()
			}
			wg.Wait()

			got, err := findByID[specialistDoc](ctx, s, colSpecialists, sp.ID, nil)
			require.NoError(t, err)
			require.Positive(t, adjusted.Load())
			assert.EqualValues(t, adjusted.Load(), got.Internal.ActiveCases, "every adjustment that succeeded counted")
			assert.EqualValues(t, 1+renamed.Load(), got.Version, "only profile writes moved the version")
			if renamed.Load() > 0 {
				assert.Regexp(t, `^Dr Load \d$`, got.Name, "a rename stuck")
			}

			// A profile write naming the version it read still lands after
			// a load change: the load is not part of the profile.
			require.NoError(t, s.AdjustLoad(ctx, sp.ID, 1))
			_, err = s.UpsertSpecialist(ctx, coordinator, SpecialistInput{
				ID: sp.ID, Name: "Dr Load", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "DE",
				ExpectedVersion: &got.Version,
			})
			require.NoError(t, err)
			_, err = s.UpsertSpecialist(ctx, coordinator, SpecialistInput{
				ID: sp.ID, Name: "Dr Stale", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "DE",
				ExpectedVersion: &got.Version,
			})
			assert.Equal(t, domain.CodeConflict, domain.ErrorCode(err), "a stale expectedVersion still fails")

			// Releases may land before the assignments they release: the
			// stored sum goes below zero and comes back; reads floor it.
			require.NoError(t, s.AdjustLoad(ctx, sp.ID, -int(adjusted.Load())-3))
			view, err := s.Specialist(ctx, coordinator, sp.ID)
			require.NoError(t, err)
			require.NotNil(t, view.Internal)
			assert.Equal(t, 0, view.Internal.ActiveCases, "a load below zero reads as zero")
			require.NoError(t, s.AdjustLoad(ctx, sp.ID, 3))
			view, err = s.Specialist(ctx, coordinator, sp.ID)
			require.NoError(t, err)
			assert.Equal(t, 1, view.Internal.ActiveCases, "and the sum stays exact")
		})
	}
}
