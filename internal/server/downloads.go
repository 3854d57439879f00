package server

import (
	"sync"
	"time"
)

// DownloadLimits bound the downloads under way (GET /files/<token>). A
// download may last the transfer limit and holds a connection, an open
// file and up to 2 MiB of decrypted read-ahead; without a bound, one
// client could keep thousands open, each within its address's request
// rate.
type DownloadLimits struct {
	// Total bounds the downloads under way in the process.
	Total int
	// PerPrincipal bounds those of one principal (the one a link was
	// issued to), so that one caller cannot take them all.
	PerPrincipal int
}

// DefaultDownloadLimits: 64 downloads at once (at most 128 MiB of
// read-ahead), 8 for one principal (a browser fetching a case's records
// opens six connections to one origin).
var DefaultDownloadLimits = DownloadLimits{Total: 64, PerPrincipal: 8}

// downloadRetry is the Retry-After of a download refused for want of a
// slot.
const downloadRetry = 5 * time.Second

// downloadSlots counts the downloads under way.
type downloadSlots struct {
	limits DownloadLimits
	mu     sync.Mutex
	total  int
	by     map[string]int
}

func newDownloadSlots(l DownloadLimits) *downloadSlots {
	return &downloadSlots{limits: l, by: map[string]int{}}
}

// enter takes one of the process's slots, when one is free.
func (s *downloadSlots) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.limits.Total {
		return false
	}
	s.total++
	return true
}

// leave gives back a slot taken by enter.
func (s *downloadSlots) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
}

// claim counts a download of the principal key (within a slot of enter's),
// when it has fewer than its bound under way.
func (s *downloadSlots) claim(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by[key] >= s.limits.PerPrincipal {
		return false
	}
	s.by[key]++
	return true
}

// unclaim gives back what claim counted.
func (s *downloadSlots) unclaim(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by[key]--; s.by[key] <= 0 {
		delete(s.by, key)
	}
}
