// Command loadrun drives a realistic mix against the gateway and, in the same
// run, against a hand-written baseline (plain net/http + the same store
// queries + encoding/json, no GraphQL), on the embedded store seeded with
// 2,000 cases and 200 specialists, and prints throughput, latency, CPU time,
// peak RSS and the gateway/baseline ratio. `make bench` runs it.
//
// Three processes take part, as in a deployment: this one holds the embedded
// store (the database server) and the load generator; the gateway (the real
// app.Run, as `make run` starts it, pointed at that store by MONGODB_URI)
// and the baseline each run in a child process of their own, so their CPU
// time and peak RSS are theirs alone.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
)

const database = "loadrun"

func main() {
	cases := flag.Int("cases", 2000, "cases to seed")
	specialists := flag.Int("specialists", 200, "specialists to seed")
	requests := flag.Int("requests", 120, "requests per run of the mix and of the case page alone (one concurrency level, one target)")
	fastRequests := flag.Int("fast-requests", 1200, "requests per run of a faster operation alone (detail, search, mutate): at hundreds of requests a second, 120 last a fraction of a second and the ratio is mostly noise")
	levels := flag.String("clients", "1,16,64", "concurrency levels for the mix (empty: skip the mix)")
	alone := flag.Int("alone", 16, "clients for each operation run alone (0: skip)")
	ops := flag.String("ops", "list,detail,search,mutate", "the operations run alone")
	serve := flag.String("serve", "", "internal: run as the gateway or baseline child process")
	flag.Parse()
	var err error
	if *serve != "" {
		err = serveChild(*serve)
	} else {
		err = run(*cases, *specialists, *requests, *fastRequests, *levels, *alone, strings.Split(*ops, ","))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadrun:", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	proc *child
	// do sends one operation of the mix for worker w.
	do func(c *http.Client, kind string, w worker) error
}

func run(nCases, nSpecialists, requests, fastRequests int, levels string, alone int, ops []string) error {
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
	// This process is the store's, tuned as the gateway tunes itself when
	// it hosts the embedded store (make run).
	embedded.TuneGC()
	// One master key for the parent and both children: it unwraps the
	// field key that seals PHI in the store.
	keyFile := filepath.Join(dir, "data-key.txt")
	kr, _, err := keys.LoadOrCreate(keyFile)
	if err != nil {
		return err
	}
	if err := os.Setenv("LOADRUN_DATA_KEY_FILE", keyFile); err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Options{URI: db.URI(), Database: database, OpTimeout: 2 * time.Minute, Prepare: db.IndexIDs, Keys: kr})
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := st.InsertDemo(ctx, seed.Build(seed.Size{Policies: nCases / 10, Specialists: nSpecialists, Cases: nCases}, st.Now())); err != nil {
		return err
	}
	fmt.Printf("seeded %d cases, %d specialists in %v\n", nCases, nSpecialists, time.Since(t0).Round(time.Millisecond))

	secret := strings.Repeat("l", 40)
	p := domain.Principal{Subject: "u-coordinator", Role: domain.RoleCoordinator, Org: seed.Operator}
	c := auth.Claims{Role: string(p.Role), Org: p.Org}
	c.Subject = p.Subject
	tok, err := auth.MintHS256([]byte(secret), c, 2*time.Hour, time.Now())
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
	var sps []*domain.Specialist
	for page := (store.Page{First: 100}); ; {
		batch, more, err := st.Specialists(ctx, p, store.SpecialistFilter{}, page, store.View{Full: true})
		if err != nil {
			return err
		}
		sps = append(sps, batch...)
		if !more || len(batch) == 0 {
			break
		}
		page.After = batch[len(batch)-1].ID
	}

	gwProc, err := startChild("gateway", db.URI(), secret)
	if err != nil {
		return err
	}
	defer gwProc.stop()
	baseProc, err := startChild("baseline", db.URI(), secret)
	if err != nil {
		return err
	}
	defer baseProc.stop()
	gw := gatewayTarget(gwProc, tok, caseIDs, sps)
	base := baselineTarget(baseProc, tok, caseIDs, sps)
	targets := []target{base, gw}
	// Warm both (connection pools, document cache) before measuring.
	for _, tg := range targets {
		drive(tg, 4, 20, defaultMix)
	}

	if dir := os.Getenv("LOADRUN_CPUPROFILE_DIR"); dir != "" {
		// This process's profile too: where the embedded store's time goes.
		f, err := os.Create(filepath.Join(dir, "store.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("machine: %d CPUs, %s/%s, %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("processes: the embedded store + this load generator; the gateway (app.Run); the baseline\n")
	fmt.Printf("%d requests per run (%d for detail, search and mutate alone); cpu ms/req is the target process's own CPU (no database) per request; store ms/req is this process's (the embedded store, with the load generator) per request of that target\n\n", requests, fastRequests)
	header := func() {
		fmt.Printf("%-8s %-9s %-9s %9s %9s %9s %12s %12s %7s\n", "clients", "op", "target", "req/s", "p50 ms", "p99 ms", "cpu ms/req", "store ms/req", "failed")
	}
	line := func(n int, op, name string, s stats) {
		fmt.Printf("%-8d %-9s %-9s %9.1f %9.1f %9.1f %12.2f %12.2f %7d\n", n, op, name, s.rps, s.p50, s.p99, s.cpuPerReq, s.storeCPUPerReq, s.failed)
	}
	ratio := func(n int, op string, g, b stats) {
		if b.rps > 0 {
			fmt.Printf("%-8d %-9s %-9s %8.0f%%\n", n, op, "ratio", 100*g.rps/b.rps)
		}
	}

	if alone > 0 {
		fmt.Printf("each operation alone, %d clients:\n", alone)
		header()
		for i, op := range ops {
			n := fastRequests
			if op == "list" {
				n = requests
			}
			resetPeakRSS()
			res := compare(targets, i, alone, n, []string{op})
			for _, name := range []string{"baseline", "gateway"} {
				line(alone, op, name, res[name]["all"])
			}
			ratio(alone, op, res["gateway"]["all"], res["baseline"]["all"])
			fmt.Printf("%-8d %-9s %-9s %8.0f MiB peak RSS during this operation's runs\n", alone, op, "store", peakRSS(os.Getpid()))
		}
		fmt.Println()
	}

	fmt.Printf("the mix: 40%% list 50 cases with policy+patient+specialist+opinion, 30%% open a case, 20%% search specialists, 10%% upsert a specialist\n")
	header()
	for i, lv := range strings.Split(levels, ",") {
		if lv == "" {
			continue
		}
		var n int
		if _, err := fmt.Sscan(lv, &n); err != nil || n < 1 {
			return fmt.Errorf("clients: %q is not a number", lv)
		}
		res := compare(targets, i, n, requests, defaultMix)
		for _, name := range []string{"baseline", "gateway"} {
			line(n, "mix", name, res[name]["all"])
		}
		ratio(n, "mix", res["gateway"]["all"], res["baseline"]["all"])
		for _, op := range []string{"list", "detail", "search", "mutate"} {
			for _, name := range []string{"baseline", "gateway"} {
				s := res[name][op]
				fmt.Printf("%-8d %-9s %-9s %9s %9.1f %9.1f\n", n, " "+op, name, "", s.p50, s.p99)
			}
		}
	}
	fmt.Println()
	fmt.Printf("peak RSS: gateway %.0f MiB, baseline %.0f MiB, embedded store + load generator %.0f MiB\n",
		gwProc.peakRSS(), baseProc.peakRSS(), peakRSS(os.Getpid()))
	return nil
}

// worker is one of n concurrent clients.
type worker struct {
	i, n int
	r    *rand.Rand
}

// specialist picks one of the specialists this worker owns: concurrent
// clients edit different specialists, as different operators would (and no
// run measures retries of conflicting writes).
func (w worker) specialist(sps []*domain.Specialist) *domain.Specialist {
	j := w.r.IntN(len(sps))
	j += w.i - j%w.n
	if j >= len(sps) {
		j -= w.n
	}
	if j < 0 {
		j = w.i % len(sps)
	}
	return sps[j]
}

type stats struct {
	rps, p50, p99, cpuPerReq, storeCPUPerReq float64
	// failed requests count in none of the others.
	failed int
}

var defaultMix = []string{"list", "list", "list", "list", "detail", "detail", "detail", "search", "search", "mutate"}

// sample is what one drive measured.
type sample struct {
	lats    map[string][]float64
	failed  map[string]int
	elapsed float64 // seconds
	cpu     float64 // the target process's CPU, ms
	// storeCPU is this process's CPU, ms: the embedded store's, plus the
	// load generator's own (a small part: it only sends requests and
	// reads the answers).
	storeCPU float64
	total    int
}

// drive sends `total` requests of the mix from n clients, recording each
// kind's latencies (and "all"), the run's duration and the target process's
// CPU time.
func drive(tg target, n, total int, mix []string) sample {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 4}, Timeout: 2 * time.Minute}
	defer client.CloseIdleConnections()
	var (
		mu     sync.Mutex
		lats   = map[string][]float64{}
		failed = map[string]int{}
		next   = make(chan int)
		wg     sync.WaitGroup
	)
	cpu0, store0 := tg.proc.cpuTime(), cpuTime(os.Getpid())
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			wk := worker{i: w, n: n, r: rand.New(rand.NewPCG(uint64(w), 7))}
			for i := range next {
				kind := mix[i%len(mix)]
				t := time.Now()
				err := tg.do(client, kind, wk)
				d := float64(time.Since(t).Microseconds()) / 1000
				mu.Lock()
				if err != nil {
					failed[kind]++
					failed["all"]++
					if failed["all"] <= 3 {
						fmt.Fprintln(os.Stderr, tg.name, kind, err)
					}
				} else {
					lats[kind] = append(lats[kind], d)
					lats["all"] = append(lats["all"], d)
				}
				mu.Unlock()
			}
		}(w)
	}
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return sample{lats: lats, failed: failed, elapsed: time.Since(start).Seconds(),
		cpu:      float64((tg.proc.cpuTime() - cpu0).Microseconds()) / 1000,
		storeCPU: float64((cpuTime(os.Getpid()) - store0).Microseconds()) / 1000, total: total}
}

// compare measures two targets on the same work in the order A B B A, each
// run the full `total` requests (a half would leave some of n clients idle
// at 64), so that what one run leaves behind in the shared
// store (garbage to collect, a WAL to checkpoint, the audit rows both write)
// and any drift of the machine weigh on both alike; which target starts
// alternates with first.
func compare(targets []target, first, n, total int, mix []string) map[string]map[string]stats {
	a, b := targets[first%2], targets[(first+1)%2]
	runs := map[string][]sample{}
	for _, tg := range []target{a, b, b, a} {
		runs[tg.name] = append(runs[tg.name], drive(tg, n, total, mix))
	}
	out := map[string]map[string]stats{}
	for name, ss := range runs {
		out[name] = summarize(ss, mix)
	}
	return out
}

// summarize merges samples of one target into stats per kind and "all".
func summarize(ss []sample, mix []string) map[string]stats {
	var elapsed, cpu, storeCPU float64
	var total int
	lats, failed := map[string][]float64{}, map[string]int{}
	for _, sm := range ss {
		elapsed, cpu, storeCPU, total = elapsed+sm.elapsed, cpu+sm.cpu, storeCPU+sm.storeCPU, total+sm.total
		for k, l := range sm.lats {
			lats[k] = append(lats[k], l...)
		}
		for k, f := range sm.failed {
			failed[k] += f
		}
	}
	out := map[string]stats{}
	for _, k := range append([]string{"all"}, mix...) {
		l := lats[k]
		sort.Float64s(l)
		out[k] = stats{rps: float64(len(l)) / elapsed, p50: pct(l, 0.50), p99: pct(l, 0.99), cpuPerReq: cpu / float64(total),
			storeCPUPerReq: storeCPU / float64(total), failed: failed[k]}
	}
	return out
}

func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// child is a gateway or baseline process started by startChild.
type child struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

// startChild runs this binary with -serve name and waits for the address it
// prints.
func startChild(name, uri, secret string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", name)
	cmd.Env = append(os.Environ(), "LOADRUN_MONGODB_URI="+uri, "LOADRUN_SECRET="+secret)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "loadrun-listening "); ok {
				addr <- a
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(c.done) }()
	select {
	case a := <-addr:
		c.url = "http://" + a
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("%s exited before listening", name)
	case <-time.After(time.Minute):
		c.stop()
		return nil, fmt.Errorf("%s did not start", name)
	}
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) peakRSS() float64 { return peakRSS(c.cmd.Process.Pid) }

// cpuTime is the child's user + system time.
func (c *child) cpuTime() time.Duration { return cpuTime(c.cmd.Process.Pid) }

// cpuTime is a process's user + system time, from /proc (clock ticks of
// 10 ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// resetPeakRSS starts this process's VmHWM afresh (Linux: clear_refs 5),
// so that peakRSS tells the peak of what follows alone.
func resetPeakRSS() {
	// What earlier work left on the heap (the seeding, the run before)
	// goes back to the system first, so the peak is this operation's.
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is a process's VmHWM in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(v), &kb)
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

var errStatus = errors.New("unexpected response")

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
		return fmt.Errorf("%w: status %d: %.200s", errStatus, res.StatusCode, data)
	}
	return nil
}

func upsertInput(sp *domain.Specialist, r *rand.Rand) map[string]any {
	return map[string]any{"name": sp.Name, "specialties": sp.Specialties, "languages": sp.Languages,
		"country": sp.Country, "acceptingCases": r.IntN(5) != 0, "orgId": sp.OrgID}
}

func gatewayTarget(proc *child, tok string, caseIDs []string, sps []*domain.Specialist) target {
	url := proc.url + "/graphql"
	return target{name: "gateway", proc: proc, do: func(c *http.Client, kind string, w worker) error {
		r := w.r
		switch kind {
		case "list":
			return post(c, url, tok, map[string]any{"query": listDoc})
		case "detail":
			return post(c, url, tok, map[string]any{"query": detailDoc, "variables": map[string]any{"id": graph.GlobalID("Case", caseIDs[r.IntN(len(caseIDs))])}})
		case "search":
			return post(c, url, tok, map[string]any{"query": searchDoc, "variables": map[string]any{"s": specialties[r.IntN(len(specialties))]}})
		default:
			sp := w.specialist(sps)
			in := upsertInput(sp, r)
			in["id"] = graph.GlobalID("Specialist", sp.ID)
			return post(c, url, tok, map[string]any{"query": mutateDoc, "variables": map[string]any{"in": in}})
		}
	}}
}

func baselineTarget(proc *child, tok string, caseIDs []string, sps []*domain.Specialist) target {
	url := proc.url
	return target{name: "baseline", proc: proc, do: func(c *http.Client, kind string, w worker) error {
		r := w.r
		switch kind {
		case "list":
			return post(c, url+"/cases", tok, map[string]any{"first": 50})
		case "detail":
			return post(c, url+"/case", tok, map[string]any{"id": caseIDs[r.IntN(len(caseIDs))]})
		case "search":
			return post(c, url+"/specialists", tok, map[string]any{"specialty": specialties[r.IntN(len(specialties))]})
		default:
			sp := w.specialist(sps)
			in := upsertInput(sp, r)
			in["id"] = sp.ID
			return post(c, url+"/specialist", tok, in)
		}
	}}
}
