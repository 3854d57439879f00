// Command loadrun drives a realistic mix against the gateway and, in the same
// run, against a hand-written baseline (plain net/http + the same store
// queries + encoding/json, no GraphQL), on the embedded store seeded with
// 2,000 cases and 200 specialists, and prints throughput, latency, peak RSS
// and the gateway/baseline ratio. `make bench` runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/store"
)

func main() {
	cases := flag.Int("cases", 2000, "cases to seed")
	specialists := flag.Int("specialists", 200, "specialists to seed")
	requests := flag.Int("requests", 120, "requests per concurrency level and target")
	levels := flag.String("clients", "1,16,64", "concurrency levels for the mix (empty: skip the mix)")
	flag.Parse()
	if err := run(*cases, *specialists, *requests, *levels); err != nil {
		fmt.Fprintln(os.Stderr, "loadrun:", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	url  string
	// do sends one operation of the mix and reports its kind.
	do func(c *http.Client, kind string, r *rand.Rand) error
}

func run(nCases, nSpecialists, requests int, levels string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "loadrun-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := embedded.Start(ctx, embedded.Options{DataDir: dir})
	if err != nil {
		return err
	}
	defer db.Stop()
	// Under load the embedded store queues commands: give them room, the
	// latency is what is measured.
	st, err := store.Open(ctx, store.Options{URI: db.URI(), Database: "loadrun", OpTimeout: 2 * time.Minute, Prepare: db.IndexIDs})
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := st.InsertDemo(ctx, seed.Build(seed.Size{Policies: nCases / 10, Specialists: nSpecialists, Cases: nCases}, st.Now())); err != nil {
		return err
	}
	fmt.Printf("seeded %d cases, %d specialists in %v\n", nCases, nSpecialists, time.Since(t0).Round(time.Millisecond))

	secret := []byte(strings.Repeat("l", 40))
	v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: secret}}, AllowHS256: true})
	if err != nil {
		return err
	}
	quiet := slog.New(slog.DiscardHandler)
	gw := httptest.NewServer(server.New(server.Deps{
		Store: st, Verifier: v, Logger: quiet, RequestTimeout: 2 * time.Minute,
		RateLimits: server.RateLimits{PerAddress: 1e6, AddressBurst: 1e6, PerPrincipal: 1e6, PrincipalBurst: 1e6, MaxTrackedKeys: 100, IdleForgetAfter: time.Hour},
	}))
	defer gw.Close()
	base := httptest.NewServer(baseline(st, v))
	defer base.Close()

	p := domain.Principal{Subject: "u-coordinator", Role: domain.RoleCoordinator, Org: seed.Operator}
	c := auth.Claims{Role: string(p.Role), Org: p.Org}
	c.Subject = p.Subject
	tok, err := auth.MintHS256(secret, c, 2*time.Hour, time.Now())
	if err != nil {
		return err
	}
	ids, _, err := st.Cases(ctx, p, store.CaseFilter{}, store.Page{First: 100}, store.CaseView{})
	if err != nil {
		return err
	}
	caseIDs := make([]string, len(ids))
	for i, x := range ids {
		caseIDs[i] = x.ID
	}
	sps, _, err := st.Specialists(ctx, p, store.SpecialistFilter{}, store.Page{First: 50})
	if err != nil {
		return err
	}
	mix := defaultMix
	gwTarget := gatewayTarget(gw.URL, tok, caseIDs, sps)
	baseTarget := baselineTarget(base.URL, tok, caseIDs, sps)

	fmt.Printf("machine: %d CPUs, %s/%s, %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("mix: 40%% list 50 cases with policy+patient+specialist+opinion, 30%% open a case, 20%% search specialists, 10%% mutation\n\n")
	fmt.Printf("%-8s %-8s %-9s %9s %9s %9s %12s\n", "clients", "target", "op", "req/s", "p50 ms", "p99 ms", "cpu ms/req")
	for _, lv := range strings.Split(levels, ",") {
		if lv == "" {
			continue
		}
		var n int
		fmt.Sscan(lv, &n)
		results := map[string]map[string]stats{}
		for _, tg := range []target{baseTarget, gwTarget} {
			results[tg.name] = drive(tg, n, requests, mix)
		}
		for _, op := range []string{"list", "detail", "search", "mutate", "all"} {
			for _, name := range []string{"baseline", "gateway"} {
				s := results[name][op]
				fmt.Printf("%-8d %-8s %-9s %9.1f %9.1f %9.1f %12.2f\n", n, name, op, s.rps, s.p50, s.p99, s.cpuPerReq)
			}
			g, b := results["gateway"][op], results["baseline"][op]
			if b.rps > 0 {
				fmt.Printf("%-8d %-8s %-9s %8.0f%%\n", n, "ratio", op, 100*g.rps/b.rps)
			}
		}
		fmt.Println()
	}
	fmt.Println("case detail alone (the mobile app opening one case), 16 clients:")
	for _, tg := range []target{baseTarget, gwTarget} {
		s := drive(tg, 16, requests, []string{"detail"})["detail"]
		fmt.Printf("%-8d %-8s %-9s %9.1f %9.1f %9.1f %12.2f\n", 16, tg.name, "detail", s.rps, s.p50, s.p99, s.cpuPerReq)
	}
	fmt.Printf("peak RSS of this process (gateway + baseline + embedded store + load generator): %.0f MiB\n", peakRSS())
	return nil
}

type stats struct {
	rps, p50, p99, cpuPerReq float64
}

var defaultMix = []string{"list", "list", "list", "list", "detail", "detail", "detail", "search", "search", "mutate"}

// drive sends `total` requests of the mix from n clients and measures each
// kind on its own (throughput per kind is its share of the run).
func drive(tg target, n, total int, mix []string) map[string]stats {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 4}, Timeout: 60 * time.Second}
	var (
		mu   sync.Mutex
		lats = map[string][]float64{}
		next = make(chan int)
		wg   sync.WaitGroup
	)
	cpu0 := cpuTime()
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range next {
				kind := mix[i%len(mix)]
				t := time.Now()
				if err := tg.do(client, kind, r); err != nil {
					fmt.Fprintln(os.Stderr, tg.name, kind, err)
				}
				d := float64(time.Since(t).Microseconds()) / 1000
				mu.Lock()
				lats[kind] = append(lats[kind], d)
				lats["all"] = append(lats["all"], d)
				mu.Unlock()
			}
		}(w)
	}
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu := (cpuTime() - cpu0).Seconds() * 1000
	out := map[string]stats{}
	for k, l := range lats {
		sort.Float64s(l)
		out[k] = stats{rps: float64(len(l)) / elapsed, p50: pct(l, 0.50), p99: pct(l, 0.99), cpuPerReq: cpu / float64(total)}
	}
	return out
}

func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), &kb)
			return kb / 1024
		}
	}
	return 0
}

const (
	listDoc   = `{ cases(first: 50) { edges { node { id reference status dueAt policy { policyNumber } patient { id givenName familyName } specialist { id name } opinion { id status deliveredAt } } } } }`
	detailDoc = `query($id: ID!) { case(id: $id) { id reference status dueAt diagnosis { code description } proposedTreatment questions records { id title kind } events { type at toStatus } patient { id givenName familyName dateOfBirth } specialist { id name country } opinion { id status memberSummary } } }`
	searchDoc = `query($s: String) { specialists(first: 20, filter: {specialty: $s, acceptingCases: true}) { edges { node { id name country languages } } } }`
	mutateDoc = `mutation($in: UpsertSpecialistInput!) { upsertSpecialist(input: $in) { specialist { id acceptingCases } } }`
)

var specialties = []string{"oncology", "cardiology", "neurology", "orthopedics", "rheumatology"}

func post(c *http.Client, url, tok string, body any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || bytes.Contains(data, []byte(`"errors"`)) {
		return fmt.Errorf("status %d: %.200s", res.StatusCode, data)
	}
	return nil
}

func upsertInput(sp *domain.Specialist, r *rand.Rand) map[string]any {
	return map[string]any{"name": sp.Name, "specialties": sp.Specialties, "languages": sp.Languages,
		"country": sp.Country, "acceptingCases": r.IntN(5) != 0, "orgId": sp.OrgID}
}

func gatewayTarget(url, tok string, caseIDs []string, sps []*domain.Specialist) target {
	return target{name: "gateway", url: url, do: func(c *http.Client, kind string, r *rand.Rand) error {
		switch kind {
		case "list":
			return post(c, url+"/graphql", tok, map[string]any{"query": listDoc})
		case "detail":
			return post(c, url+"/graphql", tok, map[string]any{"query": detailDoc, "variables": map[string]any{"id": graph.GlobalID("Case", caseIDs[r.IntN(len(caseIDs))])}})
		case "search":
			return post(c, url+"/graphql", tok, map[string]any{"query": searchDoc, "variables": map[string]any{"s": specialties[r.IntN(len(specialties))]}})
		default:
			sp := sps[r.IntN(len(sps))]
			in := upsertInput(sp, r)
			in["id"] = graph.GlobalID("Specialist", sp.ID)
			return post(c, url+"/graphql", tok, map[string]any{"query": mutateDoc, "variables": map[string]any{"in": in}})
		}
	}}
}

func baselineTarget(url, tok string, caseIDs []string, sps []*domain.Specialist) target {
	return target{name: "baseline", url: url, do: func(c *http.Client, kind string, r *rand.Rand) error {
		switch kind {
		case "list":
			return post(c, url+"/cases", tok, map[string]any{"first": 50})
		case "detail":
			return post(c, url+"/case", tok, map[string]any{"id": caseIDs[r.IntN(len(caseIDs))]})
		case "search":
			return post(c, url+"/specialists", tok, map[string]any{"specialty": specialties[r.IntN(len(specialties))]})
		default:
			sp := sps[r.IntN(len(sps))]
			in := upsertInput(sp, r)
			in["id"] = sp.ID
			return post(c, url+"/specialist", tok, in)
		}
	}}
}
