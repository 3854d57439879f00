package audit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
)

// Tamper evidence (DESIGN.md §6).
//
// Every audit event carries the SHA-256 of the one before it in its chain
// and its own, computed over a canonical encoding of the event (canonical
// below). There is one chain per gateway instance per UTC day, named
// "<instance>/<day>/<segment>":
//
//   - per instance, because the group commit already serialises this
//     process's inserts (one insert in flight, Batcher), so linking costs no
//     coordination; one chain shared by replicas would need a cross-process
//     lock or a compare-and-set on its head for every batch.
//   - per day, so a chain is a bounded segment: verification and export
//     take a date range, and retention can drop whole, verified days.
//   - a new segment starts when an insert fails, since what that insert
//     left behind is unknown: the chain goes on from a fresh start instead
//     of linking to an event that may not exist.
//
// The store records each chain's head (last position and hash) with the
// batch; Verify recomputes every chain from its first event and names the
// first broken or missing link.

// Chainer links events into this instance's chain. It is not safe for
// concurrent use: the Batcher calls it from its one drain goroutine.
type Chainer struct {
	instance string
	now      func() time.Time
	day      string
	segment  int
	seq      int64
	prev     string
}

// NewChainer starts a chain for a new instance (a random id, so two
// processes, or a restart, never share a chain).
func NewChainer(now func() time.Time) *Chainer {
	if now == nil {
		now = time.Now
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &Chainer{instance: "gw-" + hex.EncodeToString(b), now: now}
}

// Link assigns each event its chain, position, previous hash and hash, in
// order. Times are cut to milliseconds first, as the database keeps them.
func (c *Chainer) Link(events []domain.AuditEvent) {
	day := c.now().UTC().Format(time.DateOnly)
	if day != c.day {
		c.day, c.segment, c.seq, c.prev = day, 0, 0, ""
	}
	chain := fmt.Sprintf("%s/%s/%d", c.instance, c.day, c.segment)
	for i := range events {
		e := &events[i]
		e.At = e.At.UTC().Truncate(time.Millisecond)
		if e.ID == "" {
			e.ID = newID(e.At)
		}
		c.seq++
		e.Chain, e.Seq, e.Prev = chain, c.seq, c.prev
		e.Hash = Hash(*e)
		c.prev = e.Hash
	}
}

// newID is a time-ordered id in the store's form (24 hex digits: seconds,
// then random), fixed before hashing since the id is part of the event.
func newID(at time.Time) string {
	b := make([]byte, 12)
	binary.BigEndian.PutUint32(b, uint32(at.Unix()))
	_, _ = rand.Read(b[4:])
	return hex.EncodeToString(b)
}

// Broken starts a new segment: the last insert failed, and the events it
// may have left behind are not linked to.
func (c *Chainer) Broken() { c.segment, c.seq, c.prev = c.segment+1, 0, "" }

// canonical is the hashed form of an event: fixed field order, times in
// RFC 3339 with milliseconds, UTC.
type canonical struct {
	V            int    `json:"v"`
	Chain        string `json:"chain"`
	Seq          int64  `json:"seq"`
	Prev         string `json:"prev"`
	ID           string `json:"id"`
	At           string `json:"at"`
	Subject      string `json:"subject"`
	Role         string `json:"role"`
	Org          string `json:"org"`
	ClientID     string `json:"clientId"`
	Operation    string `json:"operation"`
	ResourceType string `json:"resourceType"`
	ResourceID   string `json:"resourceId"`
	FieldGroup   string `json:"fieldGroup"`
	RequestID    string `json:"requestId"`
	Outcome      string `json:"outcome"`
	CaseID       string `json:"caseId"`
	PatientID    string `json:"patientId"`
}

// Hash is the hex SHA-256 of e's canonical encoding (e.Hash itself is not
// part of it).
func Hash(e domain.AuditEvent) string {
	b, _ := json.Marshal(canonical{
		V: 1, Chain: e.Chain, Seq: e.Seq, Prev: e.Prev, ID: e.ID,
		At:      e.At.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00"),
		Subject: e.Subject, Role: string(e.Role), Org: e.Org, ClientID: e.ClientID, Operation: e.Operation,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, FieldGroup: e.FieldGroup, RequestID: e.RequestID,
		Outcome: e.Outcome, CaseID: e.CaseID, PatientID: e.PatientID,
	})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// ChainHead is a chain's recorded last link.
type ChainHead struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	Hash  string `json:"hash"`
}

// Reasons a link is broken.
const (
	BreakMissing    = "MISSING"     // no event holds this position, or no chain holds this segment
	BreakEdited     = "EDITED"      // the event's content does not match its hash
	BreakLink       = "BROKEN_LINK" // the event does not point at the one before it (reordered or replaced)
	BreakInserted   = "INSERTED"    // a second event claims a position already taken
	BreakBeyondHead = "BEYOND_HEAD" // events after the recorded head
	BreakHead       = "HEAD"        // the head does not match the chain's last event
	BreakUnchained  = "UNCHAINED"   // an event that belongs to no chain
)

// Break is the first broken or missing link of one chain.
type Break struct {
	Chain    string `json:"chain"`
	Position int64  `json:"position"`
	EventID  string `json:"eventId,omitempty"`
	Reason   string `json:"reason"`
}

// Report is the result of verifying chains.
type Report struct {
	Chains int     `json:"chains"`
	Events int     `json:"events"`
	Pruned int     `json:"pruned"` // chains of pruned days, vouched for by their checkpoints
	Breaks []Break `json:"breaks"`
}

// OK reports whether every chain verified.
func (r Report) OK() bool { return len(r.Breaks) == 0 }

// Verify recomputes every chain of events from its first position and
// reports, per chain, the first broken or missing link. heads are the
// recorded heads of the chains to verify; a chain with events but no head,
// or a head with no events, is itself a break.
func Verify(heads []ChainHead, events []domain.AuditEvent) Report {
	byChain := map[string][]domain.AuditEvent{}
	rep := Report{Events: len(events)}
	for _, e := range events {
		if e.Chain == "" {
			rep.Breaks = append(rep.Breaks, Break{EventID: e.ID, Reason: BreakUnchained})
			continue
		}
		byChain[e.Chain] = append(byChain[e.Chain], e)
	}
	headOf := map[string]ChainHead{}
	for _, h := range heads {
		headOf[h.Chain] = h
		if _, ok := byChain[h.Chain]; !ok {
			byChain[h.Chain] = nil
		}
	}
	names := make([]string, 0, len(byChain))
	for name := range byChain {
		names = append(names, name)
	}
	slices.Sort(names)
	rep.Chains = len(names)
	for _, name := range names {
		h, hasHead := headOf[name]
		if b, ok := verifyChain(name, byChain[name], h, hasHead); !ok {
			rep.Breaks = append(rep.Breaks, b)
		}
	}
	rep.Breaks = append(rep.Breaks, missingSegments(names)...)
	return rep
}

// missingSegments reports, per instance and day, each segment number
// missing between 0 and the highest one present: a chain of that day
// dropped whole, head and events (a segment starts at 0 each day and a new
// one only follows the last).
func missingSegments(names []string) []Break {
	present := map[string]map[int]bool{}
	var groups []string
	for _, name := range names {
		i := strings.LastIndexByte(name, '/')
		if i < 0 || strings.Count(name, "/") != 2 {
			continue
		}
		seg, err := strconv.Atoi(name[i+1:])
		if err != nil || seg < 0 {
			continue
		}
		group := name[:i]
		if present[group] == nil {
			present[group] = map[int]bool{}
			groups = append(groups, group)
		}
		present[group][seg] = true
	}
	slices.Sort(groups)
	var out []Break
	for _, g := range groups {
		top := 0
		for seg := range present[g] {
			top = max(top, seg)
		}
		for seg := 0; seg < top; seg++ {
			if !present[g][seg] {
				out = append(out, Break{Chain: fmt.Sprintf("%s/%d", g, seg), Position: 1, Reason: BreakMissing})
			}
		}
	}
	return out
}

func verifyChain(name string, events []domain.AuditEvent, head ChainHead, hasHead bool) (Break, bool) {
	// Stable by position, then by id, so a duplicate position is found
	// wherever the database returned it.
	slices.SortStableFunc(events, func(a, b domain.AuditEvent) int {
		if a.Seq != b.Seq {
			return int(a.Seq - b.Seq)
		}
		return strings.Compare(a.ID, b.ID)
	})
	want, prev := int64(1), ""
	for _, e := range events {
		switch {
		case hasHead && e.Seq > head.Seq:
			return Break{Chain: name, Position: e.Seq, EventID: e.ID, Reason: BreakBeyondHead}, false
		case e.Seq < want:
			return Break{Chain: name, Position: e.Seq, EventID: e.ID, Reason: BreakInserted}, false
		case e.Seq > want:
			return Break{Chain: name, Position: want, Reason: BreakMissing}, false
		case Hash(e) != e.Hash:
			return Break{Chain: name, Position: e.Seq, EventID: e.ID, Reason: BreakEdited}, false
		case e.Prev != prev:
			return Break{Chain: name, Position: e.Seq, EventID: e.ID, Reason: BreakLink}, false
		}
		want, prev = want+1, e.Hash
	}
	switch {
	case !hasHead:
		return Break{Chain: name, Position: want - 1, Reason: BreakHead}, false
	case head.Seq >= want:
		return Break{Chain: name, Position: want, Reason: BreakMissing}, false
	case head.Hash != prev:
		return Break{Chain: name, Position: head.Seq, Reason: BreakHead}, false
	}
	return Break{}, true
}
