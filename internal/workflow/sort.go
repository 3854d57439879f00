package workflow

import "sort"

// sortMatches orders best first; ties keep a stable order by id.
func sortMatches(m []Match) {
	sort.SliceStable(m, func(i, j int) bool {
		if m[i].Score != m[j].Score {
			return m[i].Score > m[j].Score
		}
		return m[i].Specialist.ID < m[j].Specialist.ID
	})
}
