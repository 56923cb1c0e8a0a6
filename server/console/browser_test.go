package console_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests drive a real Chromium (Debian's chromium package; CI
// installs it) through the DevTools protocol: one browser for the package,
// one tab per test. Without Chromium they skip, except under CI=true, where
// they fail. Each saves a screenshot of its page under $POSFLEET_SCREENSHOTS
// (default: the test's temporary directory).

var (
	chromeOnce   sync.Once
	chromeCtx    context.Context
	chromeCancel context.CancelFunc
	chromeErr    error
	chromeDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if chromeCancel != nil {
		chromeCancel()
	}
	if chromeDir != "" {
		os.RemoveAll(chromeDir)
	}
	os.Exit(code)
}

// chromiumPath finds the browser: $POSFLEET_CHROMIUM, else chromium on
// PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("POSFLEET_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not found (apt-get install chromium, or set POSFLEET_CHROMIUM)")
}

// tab opens a browser tab for the test, starting the package's browser on
// first use.
func tab(t *testing.T) context.Context {
	t.Helper()
	chromeOnce.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			chromeErr = err
			return
		}
		if chromeDir, err = os.MkdirTemp("", "posfleet-chromium"); err != nil {
			chromeErr = err
			return
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path),
			chromedp.UserDataDir(chromeDir),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.WindowSize(1280, 800),
		}
		var alloc context.Context
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelBrowser := chromedp.NewContext(alloc)
		// Start the browser now, so that a broken install fails here.
		if err := chromedp.Do(ctx); err != nil {
			cancelBrowser()
			cancelAlloc()
			chromeErr = fmt.Errorf("start %s: %w", path, err)
			return
		}
		chromeCtx = ctx
		chromeCancel = func() { cancelBrowser(); cancelAlloc() }
	})
	if chromeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need Chromium under CI: %v", chromeErr)
		}
		t.Skipf("skipping browser test: %v", chromeErr)
	}
	ctx, cancel := chromedp.NewContext(chromeCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return ctx
}

// run runs browser actions and fails the test on error, with a screenshot
// of where it stopped.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		screenshot(t, ctx, "failed")
		t.Fatalf("browser: %v", err)
	}
}

// screenshot saves the tab's page as <test>[-suffix].png.
func screenshot(t *testing.T, ctx context.Context, suffix string) {
	t.Helper()
	dir := os.Getenv("POSFLEET_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshot dir: %v", err)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_")
	if suffix != "" {
		name += "-" + suffix
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
	}
	t.Logf("screenshot: %s", file)
}

// signIn signs in on the console's login page with token.
func (e *env) signIn(t *testing.T, ctx context.Context, token string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(e.url+"/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("who")),
	)
}

// textOf returns the trimmed text of the first element matching sel.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		screenshot(t, ctx, "failed")
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitText waits until the text of sel (re-rendered by the page's own
// refresh or a reload) satisfies ok.
func waitText(t *testing.T, ctx context.Context, sel string, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function (n) { return n ? n.textContent : ""; })(document.querySelector(`+strconv.Quote(sel)+`))`))
		s = strings.TrimSpace(s)
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			screenshot(t, ctx, "timeout")
			t.Fatalf("%s: %q never became %s", sel, s, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// evalInt evaluates a JavaScript expression with a number result.
func evalInt(t *testing.T, ctx context.Context, expr string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return n
}

// evalVoid is an action that evaluates a JavaScript expression.
func evalVoid(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](expr)(ctx, t)
		return err
	})
}

// dialogs records JavaScript dialogs (alert, confirm) the tab opens, and
// dismisses them.
func dialogs(t *testing.T, ctx context.Context) func() []string {
	var mu sync.Mutex
	var seen []string
	err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			mu.Lock()
			seen = append(seen, d.Message)
			mu.Unlock()
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}
