package report_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/soakd/soakd/internal/report"
)

// browser finds a Chromium or Chrome to render pages in.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium in PATH: install Debian's chromium (.ci/run does) to check the HTML report in a real browser")
	return ""
}

// The HTML report of the recorded run (a leak canary, a partition, a
// crash) loads in a real headless browser with no console error and no
// request beyond the page itself, and shows its plots; a screenshot is
// kept in the test's temp dir for a person to look at.
func TestHTMLReportInABrowser(t *testing.T) {
	exe := browser(t)
	dir := t.TempDir()
	_, files, err := report.WriteFiles(recorded, dir, []string{"html"})
	if err != nil {
		t.Fatal(err)
	}
	page := files[0]

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(filepath.Join(dir, "profile")))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	var mu sync.Mutex
	var problems, requests []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, "console "+string(e.Type))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *network.EventRequestWillBeSent:
			requests = append(requests, e.Request.URL)
		case *network.EventLoadingFailed:
			problems = append(problems, "failed to load: "+e.ErrorText)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page), chromedp.WaitReady("body")); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	plots, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("figure svg").length`))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#verdicts + table tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(80))
	if err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "report.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("title %q, %d plots, screenshot %s (%d bytes)", title, plots, png, len(shot))

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the page reported problems: %v", problems)
	}
	for _, u := range requests {
		if u != "file://"+page {
			t.Errorf("the page fetched %s: a report must be self-contained", u)
		}
	}
	if !strings.Contains(title, "soakd run") {
		t.Errorf("title %q", title)
	}
	// One plot per sampled leak signal, a rate and a latency plot per
	// component under load.
	if plots < 7 {
		t.Errorf("%d plots on the page, want the leak signals' and each load's", plots)
	}
	if rows < 2 {
		t.Errorf("verdict table has %d rows", rows)
	}
	if len(shot) < 10_000 {
		t.Errorf("screenshot of %d bytes: the page rendered nearly nothing", len(shot))
	}
}
