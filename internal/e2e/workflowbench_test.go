package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/regula/regulatest"
)

const (
	// platformClients is how many clients run sessions at once, each one
	// session at a time (create, two uploads, wait for the decision): 16
	// sessions in flight keep the platform's two cores busy while the
	// latencies stay those of a loaded server rather than of a backlog.
	platformClients = 16
	// platformWarmup is how many sessions run before the measurement, so
	// that it finds keys cached, connections open and the workflow role
	// of a split deployment running.
	platformWarmup = 2 * platformClients
	// platformDecisionTimeout bounds the wait for one session's decision.
	platformDecisionTimeout = 60 * time.Second
	// settleReport is how long settle may take before it is logged.
	settleReport = 2 * time.Second
	// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat
	// (sysconf(_SC_CLK_TCK)): 100 on every architecture Linux and Go share.
	clockTicks = 100
)

// benchWorkflow is the workflow BenchmarkWorkflowPlatform runs: two
// collect steps (the document's front and a selfie) and four automated
// ones (DocReader, face match, a rule, the decision), as the engine's
// BenchmarkFourStepWorkflow runs them. Every session the stand-ins answer
// is approved; anything else fails the benchmark.
const benchWorkflow = `id: bench-flow
version: 1
name: Benchmark flow
start: document
steps:
  - id: document
    type: document
    pages: [{side: front}]
    next: selfie
  - id: selfie
    type: selfie
    next: docreader
  - id: docreader
    type: docreader
    scenario: FullProcess
    required_status: ok
    timeout: 10s
    retries: 2
    next: face-match
    on_fail: rejected
  - id: face-match
    type: face_match
    threshold: 0.8
    timeout: 10s
    retries: 2
    next: checks
    on_fail: rejected
  - id: checks
    type: rule
    cases:
      - when: docreader.documentType == "Utopia - ePassport (ICAO 9303 specimen)" && face_match.similarity >= 0.9 && steps.docreader.status == "passed"
        next: approved
    default:
      next: rejected
  - id: approved
    type: decision
    decision: approved
    reason: identity verified
  - id: rejected
    type: decision
    decision: rejected
    reason: checks failed
`

// benchImages are the document front and selfie every session uploads.
type benchImages struct {
	name        string
	doc, selfie []byte // JPEG
}

// decision is a verified session.completed or session.error delivery.
type decision struct {
	typ, decision string
	at            time.Time
}

// decisions is the business's webhook endpoint in the benchmark: it
// verifies each delivery's signature and hands the session's decision to
// the client waiting for it. Duplicates (delivery is at least once) find
// no waiter and are acknowledged.
type decisions struct {
	mu      sync.Mutex
	secret  []byte
	waiting map[string]chan decision
	bad     []string
}

func (d *decisions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	ev, why := readEvent(r, d.secret, at)
	if why != "" {
		d.bad = append(d.bad, why)
		http.Error(w, why, http.StatusBadRequest)
		return
	}
	if ch, ok := d.waiting[ev.Data.SessionID]; ok {
		delete(d.waiting, ev.Data.SessionID)
		ch <- decision{typ: ev.Type, decision: ev.Data.Decision, at: at}
	}
	w.WriteHeader(http.StatusNoContent)
}

// expect registers a waiter for session id's decision.
func (d *decisions) expect(id string) <-chan decision {
	ch := make(chan decision, 1)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waiting[id] = ch
	return ch
}

// refused returns why deliveries were refused so far.
func (d *decisions) refused() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.bad)
}

// sessionTimes are the client's view of one session.
type sessionTimes struct {
	api   time.Duration // create and both uploads answered
	total time.Duration // create sent to decision delivered
}

// platform is a deployment under benchmark, started by startPlatform.
type platform struct {
	api      *server
	pids     map[string]int // "api", "workflow" or "all" → process id
	dataDir  string
	hooks    *decisions
	images   benchImages
	docreads func() int
}

// BenchmarkWorkflowPlatform measures verification sessions through the
// platform as a business would run them: over HTTPS against the built
// binary (embedded defaults, rate limits off), a stored workflow
// (benchWorkflow), the DocReader and FaceAPI stand-ins on loopback in the
// test process, and a webhook subscription to session.completed through
// which each client learns its session's decision. platformClients
// clients each run one session at a time: create, upload the document's
// front and a selfie, wait for the decision's webhook.
//
// It reports sessions/s, the CPU time per session of the platform's
// processes (from /proc/<pid>/stat; the test process's own CPU, which
// holds the clients, the stand-ins and the webhook receiver, is reported
// apart as harness-cpu-ms/session), and the latencies: create to
// decision delivered (p50, p99) and create to second upload answered
// (api-p50). The CPU is read after the audit and webhook work of the
// measured sessions has drained, so background work they caused counts.
//
// roles=all runs the five roles in one process; roles=split runs the API
// with the scheduler, audit and indexer roles in one process and the
// workflow role (engine and webhook delivery) in another on the same data
// directory, and reports each one's CPU. img=small uploads 64×80 JPEGs, as
// the engine's benchmark stores; img=id1 an ID-1 page (1011×638) and a
// 480×640 selfie.
//
// Each b.N starts a fresh deployment and runs platformWarmup sessions
// before the timer starts. Give -benchtime as a count of a few hundred
// sessions or more (bench/workflow.sh): with platformClients sessions in
// flight, a small count measures the ramp rather than the steady state.
func BenchmarkWorkflowPlatform(b *testing.B) {
	if testing.Short() {
		b.Skip("starts the platform; not in -short mode")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc/<pid>/stat to read the server's CPU time")
	}
	small := benchImages{name: "small", doc: regulatest.JPEG(64, 80), selfie: regulatest.JPEG(64, 80)}
	id1 := benchImages{name: "id1", doc: regulatest.JPEG(1011, 638), selfie: regulatest.JPEG(480, 640)}
	b.Run("roles=all", func(b *testing.B) {
		for _, img := range []benchImages{small, id1} {
			b.Run("img="+img.name, func(b *testing.B) { benchPlatform(b, false, img) })
		}
	})
	b.Run("roles=split", func(b *testing.B) {
		b.Run("img="+small.name, func(b *testing.B) { benchPlatform(b, true, small) })
	})
}

// benchPlatform starts a fresh deployment, warms it up, and runs b.N
// sessions through it.
func benchPlatform(b *testing.B, split bool, img benchImages) {
	p := startPlatform(b, split, img)
	ctx := b.Context()
	if _, err := p.runSessions(ctx, platformWarmup); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	db := openReadOnly(b, p.dataDir)
	defer db.Close()
	logged0 := p.settle(b, db)

	cpu0, self0, reads0 := p.cpu(b), selfCPU(b), p.docreads()
	b.ResetTimer()
	start := time.Now()
	times, err := p.runSessions(ctx, b.N)
	wall := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	logged1 := p.settle(b, db)
	cpu1, self1 := p.cpu(b), selfCPU(b)
	if why := p.hooks.refused(); len(why) > 0 {
		b.Fatalf("the receiver refused %d deliveries, first: %s", len(why), why[0])
	}
	if got := p.docreads() - reads0; got < b.N {
		b.Fatalf("DocReader stand-in got %d requests for %d sessions", got, b.N)
	}

	n := float64(b.N)
	b.ReportMetric(n/wall.Seconds(), "sessions/s")
	var total time.Duration
	for role, c := range cpu1 {
		total += c - cpu0[role]
		if split {
			b.ReportMetric(ms(c-cpu0[role])/n, role+"-cpu-ms/session")
		}
	}
	b.ReportMetric(ms(total)/n, "cpu-ms/session")
	b.ReportMetric(ms(self1-self0)/n, "harness-cpu-ms/session")
	// The test process does the same work for every session in every run
	// (clients, stand-ins, receiver), so the ratio of the platform's CPU to
	// its own compares builds across runs on a machine whose speed varies.
	if self1 > self0 {
		b.ReportMetric(float64(total)/float64(self1-self0), "cpu-ratio")
	}
	b.ReportMetric(float64(logged1-logged0)/n, "audit-events/session")
	api := make([]time.Duration, len(times))
	all := make([]time.Duration, len(times))
	for i, t := range times {
		api[i], all[i] = t.api, t.total
	}
	b.ReportMetric(ms(percentile(all, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(api, 50)), "api-p50-ms")
}

// benchDirs is the directory holding the data directories of every
// measurement, removed only when the test binary exits (TestMain). Removing
// a measurement's thousands of files as it ends would tax the next one: on a
// filesystem without a journal, as this machine's root, ext4 skips every
// inode freed in the last 5 to 35 seconds when it allocates one, reading
// each, so the next run's file creations cost up to a millisecond of CPU
// each, in the platform's process.
var benchDirs struct {
	once sync.Once
	root string
	err  error
}

// benchDataDir returns a new data directory under benchDirs.
func benchDataDir(b *testing.B) string {
	b.Helper()
	benchDirs.once.Do(func() { benchDirs.root, benchDirs.err = os.MkdirTemp("", "idvault-bench-") })
	if benchDirs.err != nil {
		b.Fatalf("benchmark data directories: %v", benchDirs.err)
	}
	dir, err := os.MkdirTemp(benchDirs.root, "run-")
	if err != nil {
		b.Fatalf("benchmark data directory: %v", err)
	}
	return dir
}

// startPlatform starts the stand-ins, the webhook receiver and the
// platform's process(es) on a new data directory, stores benchWorkflow and
// subscribes the receiver to decisions.
func startPlatform(b *testing.B, split bool, img benchImages) *platform {
	b.Helper()
	dr := regulatest.NewDocReader(b, regulatest.Options{})
	fa := regulatest.NewFaceAPI(b, regulatest.Options{})
	hooks := &decisions{waiting: map[string]chan decision{}}
	hs := httptest.NewServer(hooks)
	b.Cleanup(hs.Close)
	hookURL, err := url.Parse(hs.URL)
	if err != nil {
		b.Fatal(err)
	}
	env := []string{
		// The scheduler's defaults, which startServer shortens for tests.
		"IDVAULT_SCHEDULER__INTERVAL=30s", "IDVAULT_SCHEDULER__LEASETTL=60s",
		"IDVAULT_API__RATELIMIT__ENABLED=false",
		"IDVAULT_REGULA__DOCREADER__URL=" + dr.URL(), "IDVAULT_REGULA__DOCREADER__ALLOWLOOPBACKHTTP=true",
		"IDVAULT_REGULA__FACEAPI__URL=" + fa.URL(), "IDVAULT_REGULA__FACEAPI__ALLOWLOOPBACKHTTP=true",
		"IDVAULT_WEBHOOKS__ALLOWNETWORKS=127.0.0.0/8", "IDVAULT_WEBHOOKS__ALLOWHTTP=true",
		"IDVAULT_WEBHOOKS__PORTS=" + hookURL.Port(),
	}
	p := &platform{dataDir: benchDataDir(b), hooks: hooks, images: img, docreads: dr.Requests}
	if split {
		p.api = startServer(b, p.dataDir, append(env, "IDVAULT_ROLES=api,scheduler,audit,indexer")...)
		p.pids = map[string]int{"api": p.api.cmd.Process.Pid, "workflow": startRole(b, p.dataDir, "workflow", env...)}
	} else {
		p.api = startServer(b, p.dataDir, env...)
		p.pids = map[string]int{"all": p.api.cmd.Process.Pid}
	}
	if p.api.apiKey == "" {
		b.Fatalf("first start printed no API key; stdout:\n%s", p.api.stdout.text())
	}
	ctx := b.Context()
	if _, _, err := p.api.call(ctx, "POST", "/api/v1/workflows", "application/yaml", []byte(benchWorkflow), http.StatusCreated); err != nil {
		b.Fatalf("store the workflow: %v", err)
	}
	sub := `{"url":"` + hs.URL + `/hooks","eventTypes":["session.completed","session.error"]}`
	var created struct {
		Secret string `json:"secret"`
	}
	if err := p.api.callJSON(ctx, "POST", "/api/v1/webhooks", "application/json", []byte(sub), http.StatusCreated, &created); err != nil {
		b.Fatalf("subscribe: %v", err)
	}
	hooks.mu.Lock()
	hooks.secret = []byte(created.Secret)
	hooks.mu.Unlock()
	return p
}

// startRole starts `idvault serve` running only role on dataDir, which
// the API process has initialised, and returns its process id. The process
// is stopped when tb ends.
func startRole(tb testing.TB, dataDir, role string, env ...string) int {
	tb.Helper()
	cmd := exec.Command(binary(tb), "serve", "--data-dir", dataDir, "--roles", role)
	cmd.Env = environ(env...)
	var stderr lines
	pipe, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start idvault serve --roles %s: %v", role, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		readLines(pipe, &stderr, func(string) {})
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-read:
		case <-time.After(exitTimeout):
			_ = cmd.Process.Kill()
			<-read
		}
		if err := cmd.Wait(); err != nil || tb.Failed() {
			tail := stderr.snapshot()
			tail = tail[max(0, len(tail)-20):]
			tb.Logf("idvault serve --roles %s: %v; last stderr lines:\n%s", role, err, strings.Join(tail, "\n"))
		}
	})
	return cmd.Process.Pid
}

// runSessions runs n sessions with platformClients clients and returns
// each one's times. It stops at the first failure.
func (p *platform) runSessions(ctx context.Context, n int) ([]sessionTimes, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	times := make([]sessionTimes, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(platformClients, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t, err := p.session(ctx)
				if err != nil {
					cancel(err)
					return
				}
				times[i] = t
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return times, nil
}

// session runs one session: create, upload, wait for the decision.
func (p *platform) session(ctx context.Context) (sessionTimes, error) {
	start := time.Now()
	v, err := p.api.createSession(ctx, `{"workflowId":"bench-flow"}`)
	if err != nil {
		return sessionTimes{}, err
	}
	decided := p.hooks.expect(v.ID)
	if _, err := p.api.upload(ctx, v.ID, "document_front", "image/jpeg", p.images.doc); err != nil {
		return sessionTimes{}, err
	}
	if _, err := p.api.upload(ctx, v.ID, "selfie", "image/jpeg", p.images.selfie); err != nil {
		return sessionTimes{}, err
	}
	uploaded := time.Now()
	timeout := time.NewTimer(platformDecisionTimeout)
	defer timeout.Stop()
	select {
	case d := <-decided:
		if d.typ != "session.completed" || d.decision != "approved" {
			return sessionTimes{}, fmt.Errorf("session %s: %s, decision %q, want session.completed, approved", v.ID, d.typ, d.decision)
		}
		return sessionTimes{api: uploaded.Sub(start), total: d.at.Sub(start)}, nil
	case <-timeout.C:
		return sessionTimes{}, fmt.Errorf("session %s: no decision delivered within %s", v.ID, platformDecisionTimeout)
	case <-ctx.Done():
		return sessionTimes{}, ctx.Err()
	}
}

// settle waits until the platform has no work left from the sessions run
// so far: no audit event in the outbox, no queued message, and as many
// events logged as a quarter second before. It returns how many events the
// audit logs hold.
func (p *platform) settle(tb testing.TB, db *sql.DB) int {
	tb.Helper()
	ctx := tb.Context()
	start := time.Now()
	deadline := start.Add(drainTimeout)
	var prev pipeline
	for polls := 0; ; polls++ {
		pl, err := readPipeline(ctx, db)
		if err != nil {
			tb.Fatal(err)
		}
		var queued int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM queue_messages`).Scan(&queued); err != nil {
			tb.Fatalf("count queued messages: %v", err)
		}
		if polls > 0 && pl.outbox == 0 && queued == 0 && pl.logged == prev.logged {
			if d := time.Since(start); d > settleReport {
				// The platform's CPU counts until now: say so when it is long.
				tb.Logf("settled after %s", d.Round(time.Millisecond))
			}
			return pl.logged
		}
		if time.Now().After(deadline) {
			tb.Fatalf("platform not settled within %s: %d audit events in the outbox, %d messages queued", drainTimeout, pl.outbox, queued)
		}
		prev = pl
		time.Sleep(250 * time.Millisecond)
	}
}

// cpu returns the CPU time each of the platform's processes used so far.
func (p *platform) cpu(tb testing.TB) map[string]time.Duration {
	out := make(map[string]time.Duration, len(p.pids))
	for role, pid := range p.pids {
		out[role] = procCPU(tb, pid)
	}
	return out
}

// procCPU returns the CPU time (user and system, all threads) process pid
// used so far, from /proc/<pid>/stat, at a resolution of 1/clockTicks s.
func procCPU(tb testing.TB, pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatalf("read the server's CPU time: %v", err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// after it come state (field 3) … utime (14) and stime (15).
	_, rest, ok := cutLast(string(data), ")")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		tb.Fatalf("/proc/%d/stat: unexpected format %q", pid, data)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// selfCPU returns the CPU time the test process used so far.
func selfCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentile returns the q-th percentile (nearest rank) of ds, sorting ds.
func percentile(ds []time.Duration, q int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[max(0, (len(ds)*q+99)/100-1)]
}

// cutLast slices s around the last instance of sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
