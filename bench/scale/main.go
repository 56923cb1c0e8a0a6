// Command scale measures how start-up, memory and admin queries grow with
// the ledger: it loads synthetic transactions through the payment engine
// (the real decision loop and synced group commit, not writes around it),
// and at each size restarts the engine in a fresh process and measures
//
//   - time from process start to payments serving (payment.Open returned),
//     and the first request of a terminal (its state read from disk);
//   - peak RSS of that process (VmHWM), start-up and queries;
//   - p50/p99 of admin transaction queries (newest page, declined, one
//     merchant, one merchant's declined, one terminal's declined, one
//     store, one response code, one merchant's response code);
//   - how long the request filter takes to build, and the cost of
//     duplicate checks for new request IDs before and after it is ready;
//   - the audit trail's open time, with -audit events written.
//
// Growth exponents are fitted between successive sizes (log t2/t1 over
// log n2/n1). Usage:
//
//	go run ./bench/scale -sizes 100000,300000,1000000
//	go run ./bench/scale -sizes 1000000,3000000,10000000 -terminals 100000 -audit 3000000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

// directory gives every terminal the same policy: terminal i belongs to
// merchant i % merchants.
type directory struct{ merchants int }

func (d directory) Policy(id string) (payment.Policy, error) {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "T"))
	return payment.Policy{
		TerminalID:       id,
		MerchantID:       merchantOf(n, d.merchants),
		StoreID:          "S1",
		MerchantCurrency: "NZD",
		MerchantMCC:      "5411",
		Location:         time.UTC,
	}, nil
}

func merchantOf(terminal, merchants int) string { return fmt.Sprintf("M%d", terminal%merchants) }
func terminalID(i int) string                   { return fmt.Sprintf("T%07d", i) }

// point is one size's measurements, written by the restart process.
type point struct {
	Transactions  int                   `json:"transactions"`
	AuditEvents   int                   `json:"audit_events"`
	OpenSeconds   float64               `json:"open_s"`
	OpenCPU       float64               `json:"open_cpu_s"`
	StoreOpenCPU  float64               `json:"store_open_cpu_s"`
	DBMB          float64               `json:"db_mb"`
	BackupMB      float64               `json:"backup_mb"`
	BackupSeconds float64               `json:"backup_s"`
	BackupRSSMB   float64               `json:"backup_peak_rss_mb"`
	BackupAnonMB  float64               `json:"backup_anon_rss_mb"`
	AuditOpenSecs float64               `json:"audit_open_s"`
	FirstRequest  float64               `json:"first_request_ms"`
	FilterSeconds float64               `json:"filter_build_s"`
	DupBeforeUS   float64               `json:"new_request_before_filter_us"`
	DupAfterUS    float64               `json:"new_request_after_filter_us"`
	PeakRSSMB     float64               `json:"peak_rss_mb"`
	AnonMB        float64               `json:"anon_rss_mb"`
	Queries       map[string][2]float64 `json:"query_p50_p99_ms"`
}

func main() {
	var (
		dir       = flag.String("dir", "", "data directory (default: a temporary one, removed after)")
		sizes     = flag.String("sizes", "100000,300000", "ledger sizes to measure at, ascending")
		terminals = flag.Int("terminals", 10000, "terminals")
		merchants = flag.Int("merchants", 100, "merchants")
		declineEv = flag.Int("decline-every", 1000, "one transaction in this many is declined")
		auditN    = flag.Int("audit", 0, "audit events to write by the last size (spread over the sizes)")
		workers   = flag.Int("workers", 256, "concurrent requests while loading")
		restart   = flag.Bool("restart", false, "internal: measure one restart of -dir")
		backup    = flag.String("backup", "", "internal: back -dir up to this file and report")
		out       = flag.String("json", "", "also write the points as JSON to this file")
		cpuprof   = flag.String("cpuprofile", "", "with -restart: write a CPU profile of the restart to this file")
	)
	flag.Parse()
	if *backup != "" {
		if err := json.NewEncoder(os.Stdout).Encode(measureBackup(*dir, *backup)); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *restart {
		if *cpuprof != "" {
			f, err := os.Create(*cpuprof)
			if err != nil {
				log.Fatal(err)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		p := measureRestart(*dir, *terminals, *merchants)
		if err := json.NewEncoder(os.Stdout).Encode(p); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "posfleet-scale-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	var points []point
	loaded, audited := 0, 0
	var targets []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("bad size %q", s)
		}
		targets = append(targets, n)
	}
	for _, n := range targets {
		wantAudit := 0
		if *auditN > 0 {
			wantAudit = int(float64(*auditN) * float64(n) / float64(targets[len(targets)-1]))
		}
		start := time.Now()
		load(*dir, loaded, n, wantAudit-audited, *terminals, *merchants, *declineEv, *workers)
		fmt.Fprintf(os.Stderr, "loaded %d transactions (%d new) in %v\n", n, n-loaded, time.Since(start).Round(time.Millisecond))
		loaded, audited = n, max(audited, wantAudit)
		cmd := exec.Command(os.Args[0], "-restart", "-dir", *dir, "-terminals", strconv.Itoa(*terminals), "-merchants", strconv.Itoa(*merchants))
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			log.Fatalf("restart at %d: %v", n, err)
		}
		var p point
		if err := json.Unmarshal(b, &p); err != nil {
			log.Fatalf("restart at %d: %v: %s", n, err, b)
		}
		p.Transactions, p.AuditEvents = n, audited
		bf := *dir + ".backup"
		cmd = exec.Command(os.Args[0], "-dir", *dir, "-backup", bf)
		cmd.Stderr = os.Stderr
		if b, err = cmd.Output(); err != nil {
			log.Fatalf("backup at %d: %v", n, err)
		}
		os.Remove(bf)
		var bp point
		if err := json.Unmarshal(b, &bp); err != nil {
			log.Fatalf("backup at %d: %v: %s", n, err, b)
		}
		p.DBMB, p.BackupMB, p.BackupSeconds, p.BackupRSSMB, p.BackupAnonMB = bp.DBMB, bp.BackupMB, bp.BackupSeconds, bp.BackupRSSMB, bp.BackupAnonMB
		points = append(points, p)
	}
	report(points)
	if *out != "" {
		b, _ := json.MarshalIndent(points, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// peakRSSMB returns the process's peak resident set in MiB (VmHWM). Not
// getrusage's maxrss: Linux carries that over exec from the parent, the
// loader, whose peak is not this process's.
func peakRSSMB() float64 { return procStatusMB("VmHWM:") }

// anonRSSMB returns the process's anonymous resident memory in MiB now
// (RssAnon): heap and stacks, without the store's memory-mapped tables,
// which the page cache can drop.
func anonRSSMB() float64 { return procStatusMB("RssAnon:") }

func procStatusMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// storeOpenCPU is the CPU time of the last store.Open in openAll.
var storeOpenCPU time.Duration

func openAll(dir string, merchants int) (*store.DB, *audit.Log, *payment.Engine, time.Duration, time.Duration) {
	opts := store.DefaultOptions(dir)
	c := cpuTime()
	db, err := store.Open(opts, nil)
	if err != nil {
		log.Fatal(err)
	}
	storeOpenCPU = cpuTime() - c
	t0 := time.Now()
	al, err := audit.Open(context.Background(), db, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	auditOpen := time.Since(t0)
	t1 := time.Now()
	eng, err := payment.Open(context.Background(), db, al, directory{merchants}, payment.DefaultOptions(), nil)
	if err != nil {
		log.Fatal(err)
	}
	return db, al, eng, time.Since(t1), auditOpen
}

// load authorizes transactions from..to-1 through the engine, workers at
// a time so that the group commit gathers them, and records audit events.
func load(dir string, from, to, auditEvents, terminals, merchants, declineEvery, workers int) {
	db, al, eng, _, _ := openAll(dir, merchants)
	defer func() {
		if err := eng.Close(); err != nil {
			log.Fatal(err)
		}
		al.Close()
		db.Close()
	}()
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				term := i % terminals
				token := "tok_scale_" + strconv.Itoa(i)
				if i%declineEvery == declineEvery-1 {
					token = "tok_test_nsf"
				}
				_, err := eng.Authorize(context.Background(), payment.AuthorizeRequest{
					TerminalID: terminalID(term),
					RequestID:  "r" + strconv.Itoa(i),
					MerchantID: merchantOf(term, merchants),
					Amount:     payment.Money{MinorUnits: int64(100 + i%5000), Currency: "NZD"},
					Card:       payment.Card{Token: token, MaskedPAN: "411111******1111", EntryMode: payment.EntryModeChip},
					Capture:    true,
				})
				if err != nil {
					log.Fatalf("authorize %d: %v", i, err)
				}
			}
		}()
	}
	for i := range max(auditEvents, 0) {
		al.Record(audit.Event{Type: audit.BatchClosed, Time: time.Now(), Actor: "scale", TerminalID: terminalID(i % terminals), Message: "batch closed"})
	}
	wg.Wait()
	if err := al.Flush(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// measureRestart opens dir in this (fresh) process and measures.
func measureRestart(dir string, terminals, merchants int) point {
	cpu0 := cpuTime()
	db, al, eng, openTime, auditOpen := openAll(dir, merchants)
	openCPU := cpuTime() - cpu0
	defer func() {
		eng.Close()
		al.Close()
		db.Close()
	}()
	ctx := context.Background()
	p := point{OpenSeconds: openTime.Seconds(), OpenCPU: openCPU.Seconds(), StoreOpenCPU: storeOpenCPU.Seconds(), AuditOpenSecs: auditOpen.Seconds(), Queries: map[string][2]float64{}}
	// New request IDs right after Open: every one reads the disk. They
	// are this restart's own (a measurement at each size restarts the same
	// store): IDs of an earlier restart would be replays, not new.
	run := time.Now().UnixNano()
	authorize := func(i int, term int) time.Duration {
		t := time.Now()
		_, err := eng.Authorize(ctx, payment.AuthorizeRequest{
			TerminalID: terminalID(term), RequestID: fmt.Sprintf("restart-%d-%d", run, i), MerchantID: merchantOf(term, merchants),
			Amount: payment.Money{MinorUnits: 100, Currency: "NZD"},
			Card:   payment.Card{Token: fmt.Sprintf("tok_restart_%d", i), MaskedPAN: "411111******1111", EntryMode: payment.EntryModeChip},
		})
		if err != nil {
			log.Fatal(err)
		}
		return time.Since(t)
	}
	p.FirstRequest = float64(authorize(0, 1).Microseconds()) / 1000
	// Duplicate checks are inside Authorize, whose cost is dominated by
	// the synced commit; sequential requests of one terminal measure it
	// with the commit, before and after the filter, and the difference is
	// the check.
	const dupN = 200
	var before time.Duration
	for i := range dupN {
		before += authorize(1+i, 1)
	}
	p.DupBeforeUS = float64(before.Microseconds()) / dupN
	t := time.Now()
	for !eng.RequestFilterReady() {
		time.Sleep(5 * time.Millisecond)
	}
	p.FilterSeconds = time.Since(t).Seconds()
	var after time.Duration
	for i := range dupN {
		after += authorize(1000+i, 1)
	}
	p.DupAfterUS = float64(after.Microseconds()) / dupN

	queries := []struct {
		name string
		f    payment.TxFilter
	}{
		{"newest", payment.TxFilter{}},
		{"declined", payment.TxFilter{Decision: payment.DecisionDeclined}},
		{"merchant", payment.TxFilter{MerchantID: merchantOf(1, merchants)}},
		{"merchant_declined", payment.TxFilter{MerchantID: merchantOf(1, merchants), Decision: payment.DecisionDeclined}},
		{"terminal_declined", payment.TxFilter{TerminalID: terminalID(terminals - 1), Decision: payment.DecisionDeclined}},
		{"terminal", payment.TxFilter{TerminalID: terminalID(terminals - 1)}},
		{"store", payment.TxFilter{MerchantID: merchantOf(1, merchants), StoreID: "S1"}},
		{"response_code", payment.TxFilter{ResponseCode: "51"}},
		{"merchant_response_code", payment.TxFilter{MerchantID: merchantOf(1, merchants), ResponseCode: "51"}},
	}
	for _, q := range queries {
		var lat []float64
		for range 30 {
			t := time.Now()
			if _, _, err := eng.ListTransactions(ctx, q.f, 100, ""); err != nil {
				log.Fatal(err)
			}
			lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		}
		slices.Sort(lat)
		p.Queries[q.name] = [2]float64{lat[len(lat)/2], lat[len(lat)*99/100]}
	}
	p.PeakRSSMB, p.AnonMB = peakRSSMB(), anonRSSMB()
	return p
}

// measureBackup backs dir up to file in this (fresh) process.
func measureBackup(dir, file string) point {
	db, err := store.Open(store.DefaultOptions(dir), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var size int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	f, err := os.Create(file)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	t := time.Now()
	if err := db.Backup(context.Background(), f); err != nil {
		log.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		log.Fatal(err)
	}
	return point{DBMB: float64(size) / (1 << 20), BackupMB: float64(fi.Size()) / (1 << 20),
		BackupSeconds: time.Since(t).Seconds(), BackupRSSMB: peakRSSMB(), BackupAnonMB: anonRSSMB()}
}

func exponent(n1, n2 int, y1, y2 float64) string {
	if y1 <= 0 || y2 <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", math.Log(y2/y1)/math.Log(float64(n2)/float64(n1)))
}

func report(ps []point) {
	fmt.Printf("%-12s %8s %10s %8s %8s %9s %9s %10s %10s %10s %9s\n", "transactions", "open_s", "open_cpu_s", "rss_MB", "anon_MB", "first_ms", "filter_s", "new_pre_us", "new_post_us", "audit_open", "audit_ev")
	for _, p := range ps {
		fmt.Printf("%-12d %8.3f %10.3f %8.0f %8.0f %9.2f %9.3f %10.0f %10.0f %10.3f %9d\n", p.Transactions, p.OpenSeconds, p.OpenCPU, p.PeakRSSMB, p.AnonMB, p.FirstRequest, p.FilterSeconds, p.DupBeforeUS, p.DupAfterUS, p.AuditOpenSecs, p.AuditEvents)
	}
	names := []string{"newest", "declined", "merchant", "merchant_declined", "terminal_declined", "terminal", "store", "response_code", "merchant_response_code"}
	fmt.Printf("\n%-12s %12s %8s %9s %10s %10s %11s\n", "transactions", "store_cpu_s", "db_MB", "backup_MB", "backup_s", "backup_rss", "backup_anon")
	for _, p := range ps {
		fmt.Printf("%-12d %12.3f %8.1f %9.1f %10.2f %10.0f %11.0f\n", p.Transactions, p.StoreOpenCPU, p.DBMB, p.BackupMB, p.BackupSeconds, p.BackupRSSMB, p.BackupAnonMB)
	}
	fmt.Printf("\nquery p50/p99 ms\n%-12s", "transactions")
	for _, n := range names {
		fmt.Printf(" %19s", n)
	}
	fmt.Println()
	for _, p := range ps {
		fmt.Printf("%-12d", p.Transactions)
		for _, n := range names {
			q := p.Queries[n]
			fmt.Printf(" %9.2f/%9.2f", q[0], q[1])
		}
		fmt.Println()
	}
	fmt.Println("\ngrowth exponents between successive sizes (open time, open CPU time (store and audit included), peak RSS, worst query p99)")
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		worst := func(p point) float64 {
			w := 0.0
			for _, q := range p.Queries {
				w = max(w, q[1])
			}
			return w
		}
		fmt.Printf("%d -> %d: open %s, open cpu %s, rss %s, query p99 %s\n", a.Transactions, b.Transactions,
			exponent(a.Transactions, b.Transactions, a.OpenSeconds, b.OpenSeconds),
			exponent(a.Transactions, b.Transactions, a.OpenCPU, b.OpenCPU),
			exponent(a.Transactions, b.Transactions, a.PeakRSSMB, b.PeakRSSMB),
			exponent(a.Transactions, b.Transactions, worst(a), worst(b)))
	}
}
