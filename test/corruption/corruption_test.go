package corruption_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

const (
	adminToken = "pfa_corruption-test-admin-token-0123456789"
	terminals  = 4
	// perTerminal is how many authorizations each terminal makes; every
	// seventh is declined by a test card.
	perTerminal = 60
)

// server is a posfleet serve that either serves or refused to start.
type server struct {
	cmd    *exec.Cmd
	addr   string
	logs   strings.Builder
	mu     sync.Mutex // guards logs
	exited chan struct{}
	err    error
}

var reServing = regexp.MustCompile(`msg=serving addr=(\S+)`)

// launch runs the binary on dir until it serves or exits.
func launch(t *testing.T, bin, dir, tokenFile string) *server {
	t.Helper()
	s := &server{exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--console-listen", "off", "--data-dir", dir, "--admin-token-file", tokenFile)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := reServing.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-read
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.kill)
	select {
	case s.addr = <-addrc:
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.kill()
		t.Fatal("posfleet neither served nor exited within 60s")
	}
	return s
}

// output returns what the server logged.
func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

func (s *server) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("posfleet did not stop within 60s")
	}
	if s.err != nil {
		t.Fatalf("posfleet stop: %v\n%s", s.err, s.output())
	}
}

func dial(t *testing.T, addr, secret string) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(secret), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ack is an answer a terminal was given.
type ack struct {
	terminal int
	req      *pb.AuthorizeRequest
	resp     *pb.AuthorizeResponse
}

// fixture is a database built through the server, with what terminals
// were told.
type fixture struct {
	bin, tokenFile string
	creds          []string
	acks           []ack
}

func request(terminal, i int) *pb.AuthorizeRequest {
	token := fmt.Sprintf("tok_corrupt_%d_%d", terminal, i)
	if i%7 == 6 {
		token = fmt.Sprintf("%sdecline_%d_%d", payment.TestCardPrefix, terminal, i)
	}
	return &pb.AuthorizeRequest{
		RequestId:  fmt.Sprintf("corrupt-%d-%d", terminal, i),
		MerchantId: "M1",
		Amount:     &pb.Money{MinorUnits: int64(100 + i), Currency: "NZD"},
		Card:       &pb.Card{Token: token, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		Capture:    true,
	}
}

// build makes the database in dir: a merchant, terminals, and
// authorizations sent concurrently so that commits hold several each. The
// server is killed with SIGKILL at the end, leaving the newest commits in
// the write-ahead log.
func build(t *testing.T, bin, dir string) *fixture {
	t.Helper()
	f := &fixture{bin: bin, tokenFile: filepath.Join(t.TempDir(), "admin-token")}
	if err := os.WriteFile(f.tokenFile, []byte(adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	s := launch(t, bin, dir, f.tokenFile)
	if s.addr == "" {
		t.Fatalf("posfleet did not start on a new data directory:\n%s", s.output())
	}
	ctx := t.Context()
	admin := dial(t, s.addr, adminToken)
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: "M1", LegalName: "M1 Ltd", Mcc: "5411", Currency: "NZD"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateStore(ctx, &pb.Store{MerchantId: "M1", StoreId: "S1", Name: "S1"}); err != nil {
		t.Fatal(err)
	}
	for i := range terminals {
		serial := fmt.Sprint("SN-CORRUPT-", i)
		prov, err := admin.ProvisionTerminal(ctx, serial, "M1", "S1", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := admin.Register(ctx, serial, prov.GetEnrollmentCode(), &pb.DeviceInfo{Model: "corrupt"})
		if err != nil {
			t.Fatal(err)
		}
		f.creds = append(f.creds, reg.GetCredential())
	}
	var mu sync.Mutex // guards f.acks
	var wg sync.WaitGroup
	for i, cred := range f.creds {
		c := dial(t, s.addr, cred)
		for half := range 2 { // two workers per terminal
			wg.Go(func() {
				for n := half; n < perTerminal; n += 2 {
					req := request(i, n)
					resp, err := c.Payment().Authorize(ctx, req)
					if err != nil {
						t.Errorf("Authorize %s: %v", req.RequestId, err)
						return
					}
					mu.Lock()
					f.acks = append(f.acks, ack{terminal: i, req: req, resp: resp})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	s.kill()
	if len(f.acks) != terminals*perTerminal {
		t.Fatalf("acknowledged: got %d, want %d", len(f.acks), terminals*perTerminal)
	}
	return f
}

// outcome is what starting the server on a damaged copy came to.
type outcome struct {
	refused  bool
	reason   string
	replayed int
}

// check starts the server on dir and checks the two allowed outcomes.
func (f *fixture) check(t *testing.T, dir string) outcome {
	t.Helper()
	s := launch(t, f.bin, dir, f.tokenFile)
	if s.addr == "" {
		out := s.output()
		if s.err == nil || !strings.Contains(out, "database is damaged") || !strings.Contains(out, "posfleet restore") {
			t.Fatalf("posfleet exited (%v) without saying the database is damaged and how to recover:\n%s", s.err, out)
		}
		return outcome{refused: true, reason: lastLine(out)}
	}
	defer s.kill()
	clients := make([]*client.Client, len(f.creds))
	for i, cred := range f.creds {
		clients[i] = dial(t, s.addr, cred)
	}
	var o outcome
	for _, a := range f.acks {
		got, err := clients[a.terminal].Payment().Authorize(t.Context(), a.req)
		if err != nil {
			t.Errorf("replay of acknowledged %s: %v", a.req.RequestId, err)
			continue
		}
		if !got.GetReplayed() || got.GetAuthorizationId() != a.resp.GetAuthorizationId() || got.GetDecision() != a.resp.GetDecision() ||
			got.GetResponseCode() != a.resp.GetResponseCode() || got.GetAuthCode() != a.resp.GetAuthCode() {
			t.Errorf("replay of acknowledged %s: got %s %s %s %s (replayed %v), the terminal was told %s %s %s %s",
				a.req.RequestId, got.GetAuthorizationId(), got.GetDecision(), got.GetResponseCode(), got.GetAuthCode(), got.GetReplayed(),
				a.resp.GetAuthorizationId(), a.resp.GetDecision(), a.resp.GetResponseCode(), a.resp.GetAuthCode())
			continue
		}
		o.replayed++
	}
	return o
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// copyDir copies the regular files of src into a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// files returns the files in dir with the extension, largest first.
func files(t *testing.T, dir, ext string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	size := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	slices.SortFunc(matches, func(a, b string) int { return int(size(b) - size(a)) })
	return matches
}

// newest returns the file in dir with the extension and the highest
// number (Badger numbers its files in creation order).
func newest(t *testing.T, dir, ext string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no %s file in %s (%v)", ext, dir, err)
	}
	slices.Sort(matches)
	return matches[len(matches)-1]
}

// written returns how many bytes at the start of a preallocated file hold
// data: up to its last non-zero byte.
func written(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return int64(n)
}

// flip inverts 64 bytes of the file at path from off (clamped to the file).
func flip(path string, off int64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	off = max(0, min(off, int64(len(b))-64))
	for i := off; i < off+64 && i < int64(len(b)); i++ {
		b[i] ^= 0xFF
	}
	return os.WriteFile(path, b, 0o600)
}

func TestCorruptionMatrix(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "posfleet")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/posfleet/posfleet/cmd/posfleet").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	killed := filepath.Join(t.TempDir(), "data")
	f := build(t, bin, killed)
	// The same database stopped cleanly: Badger flushes its memtable into
	// a table on close.
	closed := copyDir(t, killed)
	s := launch(t, bin, closed, f.tokenFile)
	if s.addr == "" {
		t.Fatalf("posfleet did not start on the killed database:\n%s", s.output())
	}
	s.stop(t)
	if len(files(t, closed, ".sst")) == 0 {
		t.Fatal("no table after a clean stop")
	}
	// The same database started once more: that start verified the table
	// in full and recorded it in verified-tables, so that later starts
	// read only its tail (last block, index and footer).
	recorded := copyDir(t, closed)
	s = launch(t, bin, recorded, f.tokenFile)
	if s.addr == "" {
		t.Fatalf("posfleet did not start on the stopped database:\n%s", s.output())
	}
	s.stop(t)

	type damage func(t *testing.T, dir string) error
	wal := func(at func(n int64) int64) damage {
		return func(t *testing.T, dir string) error {
			mem := newest(t, dir, ".mem")
			return flip(mem, at(written(t, mem)))
		}
	}
	sst := func(at func(n int64) int64) damage {
		return func(t *testing.T, dir string) error {
			table := files(t, dir, ".sst")[0]
			st, err := os.Stat(table)
			if err != nil {
				return err
			}
			return flip(table, at(st.Size()))
		}
	}
	remove := func(ext string) damage {
		return func(t *testing.T, dir string) error { return os.Remove(files(t, dir, ext)[0]) }
	}
	tests := []struct {
		name   string
		base   string
		damage damage
		// refuse is set where the damage loses acknowledged data, so
		// that only a refusal is right.
		refuse bool
	}{
		{"killed, intact", killed, nil, false},
		{"closed, intact", closed, nil, false},
		{"WAL early", killed, wal(func(n int64) int64 { return n / 10 }), true},
		{"WAL middle", killed, wal(func(n int64) int64 { return n / 2 }), true},
		{"WAL last entry", killed, wal(func(n int64) int64 { return n - 64 }), true},
		{"WAL deleted", killed, remove(".mem"), true},
		{"SST head", closed, sst(func(int64) int64 { return 0 }), true},
		{"SST middle", closed, sst(func(n int64) int64 { return n / 2 }), true},
		{"SST tail", closed, sst(func(n int64) int64 { return n - 64 }), true},
		{"table deleted", closed, remove(".sst"), true},
		{"recorded SST middle", recorded, sst(func(n int64) int64 { return n / 2 }), true},
		{"recorded SST tail", recorded, sst(func(n int64) int64 { return n - 64 }), true},
		{"MANIFEST middle", closed, func(t *testing.T, dir string) error {
			p := filepath.Join(dir, "MANIFEST")
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return flip(p, st.Size()/2)
		}, false},
		{"MANIFEST cut short", closed, func(t *testing.T, dir string) error {
			p := filepath.Join(dir, "MANIFEST")
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()/2)
		}, false},
		{"value log head", closed, func(t *testing.T, dir string) error { return flip(newest(t, dir, ".vlog"), 0) }, false},
		{"watermark damaged", killed, func(t *testing.T, dir string) error {
			p := filepath.Join(dir, store.WatermarkFile)
			if err := flip(p, 0); err != nil {
				return err
			}
			return flip(p, 128)
		}, true},
		{"watermark deleted", killed, func(t *testing.T, dir string) error { return os.Remove(filepath.Join(dir, store.WatermarkFile)) }, true},
	}
	// posfleet verify reads recorded tables whole too: it names the
	// damaged table, not only the records missing from it.
	verifySays := map[string]string{"recorded SST middle": ".sst", "recorded SST tail": ".sst"}
	var refused, served, checked int
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, tt.base)
			if tt.damage != nil {
				if err := tt.damage(t, dir); err != nil {
					t.Fatal(err)
				}
			}
			// posfleet verify reads the copy first, changing nothing.
			out, err := exec.Command(bin, "verify", "--data-dir", dir).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.damage == nil && code != 0 || tt.refuse && code != 3 {
				t.Errorf("posfleet verify: exit %d\n%s", code, out)
			}
			if !strings.Contains(string(out), verifySays[tt.name]) {
				t.Errorf("posfleet verify does not name %q:\n%s", verifySays[tt.name], out)
			}
			o := f.check(t, dir)
			if o.refused && code != 3 {
				t.Errorf("the server refused to start, but posfleet verify exited %d:\n%s", code, out)
			}
			switch {
			case o.refused && tt.damage == nil:
				t.Fatalf("refused an intact database: %s", o.reason)
			case !o.refused && tt.refuse:
				t.Errorf("served a database that lost acknowledged data (%d answers replayed)", o.replayed)
			case o.refused:
				refused++
				t.Logf("refused: %s", o.reason)
			default:
				served++
				checked += o.replayed
				t.Logf("served; %d acknowledged answers replayed unchanged", o.replayed)
			}
		})
	}
	t.Logf("%d cases: %d refused to start, %d served with every acknowledged answer unchanged (%d answers checked, lost: 0); %d answers acknowledged per case",
		len(tests), refused, served, checked, len(f.acks))
}
