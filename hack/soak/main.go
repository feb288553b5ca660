// Command soak runs a real soak of the default configuration for a given
// duration and prints what a soak owner reads at the end: alerts fired,
// each leak signal's slope and detectable slope against its threshold,
// soakd's RSS and heap at the start and the end, CPU per operation, and
// the invariant checkers' counts. `make soak DURATION=2h` runs it.
//
// It is accelerated where that is honest: the warm-up is 2 minutes (not
// 10), random faults come every minute on average (not every 5), and the
// heap canary starts after 30 minutes (not 2 hours), so a 2-hour soak sees
// about a hundred faults and proves the alert path once. Everything else is
// the embedded default: every component, the default load and thresholds.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// overlay is laid over the embedded default config (soakd merges a user
// file over the defaults).
const overlay = `
run: {warmup: 2m}
listen: 127.0.0.1:0
faults:
  random: {mean_interval: 1m}
  timeline:
    - {at: 1h, duration: 5m, kind: partition, target: raft/leader}
    - {at: 30m, duration: 30m, kind: leak, params: {resource: heap, rate: 2MiB/min}}
`

func main() {
	bin := flag.String("soakd", "bin/soakd", "the soakd binary")
	duration := flag.Duration("duration", 2*time.Hour, "how long to soak")
	seed := flag.Uint64("seed", 1, "the run's seed")
	keep := flag.String("state-dir", "", "state dir to use and keep (default: a temporary one, removed)")
	accelerate := flag.Bool("accelerate", true, "a fault a minute, a 2-minute warm-up and the canary at 30m; false runs the embedded default as it is")
	record := flag.String("record", "", "write each leak signal's samples to <signal>.tsv in this directory")
	raftMode := flag.String("raft-mode", "", "components.raft.mode: inprocess (the default config's), or processes to soak the Raft nodes as `soakd node` processes")
	pbftMode := flag.String("pbft-mode", "", "components.pbft.mode: inprocess (the default config's), or processes to soak the PBFT replicas as `soakd node` processes")
	hostMode := flag.String("migration-host-mode", "", "components.migration.host_mode: inprocess (the default config's), or processes to soak the migration hosts as `soakd node` processes")
	flag.Parse()
	var modes []string // each component's mode overrides, as YAML
	for _, m := range []struct{ comp, key, val string }{
		{"raft", "mode", *raftMode}, {"pbft", "mode", *pbftMode}, {"migration", "host_mode", *hostMode}} {
		if m.val != "" {
			modes = append(modes, m.comp+": {"+m.key+": "+m.val+"}")
		}
	}
	if err := soak(*bin, *duration, *seed, *keep, *record, modes, *accelerate); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func soak(bin string, duration time.Duration, seed uint64, state, record string, modes []string, accelerate bool) error {
	dir, err := os.MkdirTemp("", "soakd-soak-")
	if err != nil {
		return err
	}
	keepDir := false // a soak that found something keeps its state, log and evidence
	defer func() {
		if keepDir {
			fmt.Printf("\nkept for investigation: %s (the state dir, soakd.log, the config)\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	if state == "" {
		state = filepath.Join(dir, "state")
	}
	cfg := filepath.Join(dir, "soak.yaml")
	ov := overlay
	if !accelerate {
		ov = "listen: 127.0.0.1:0\n"
	}
	if len(modes) > 0 {
		ov += "components: {" + strings.Join(modes, ", ") + "}\n"
	}
	if err := os.WriteFile(cfg, []byte(ov), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "run", "--config", cfg, "--state-dir", state, "--duration", duration.String(),
		"--seed", strconv.FormatUint(seed, 10))
	logPath := filepath.Join(dir, "soakd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	pr, pw, _ := os.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return err
	}
	pw.Close()
	addrc := make(chan string, 1)
	go func() { // the listen address from the log, then the rest to the file
		re := regexp.MustCompile(`msg="serving HTTP" addr=(\S+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
			fmt.Fprintln(logFile, sc.Text())
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-stop; _ = cmd.Process.Signal(syscall.SIGTERM) }()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		return fmt.Errorf("soakd did not start serving (log: %s)", logPath)
	}
	fmt.Printf("soaking for %s (seed %d), soakd at %s, state in %s\n", duration, seed, addr, state)

	// The start is taken after the warm-up, as the detectors see it.
	warmup := 10 * time.Minute // the embedded default's run.warmup
	if accelerate {
		warmup = 2 * time.Minute
	}
	time.Sleep(min(warmup+10*time.Second, duration/2))
	start, err := scrape(addr)
	if err != nil {
		return err
	}
	// CPU by stage: soakd's own samples (profiling.stage_cpu), averaged.
	var stages stageAverage
	if record != "" {
		rec, err := newRecorder(record, time.Now())
		if err != nil {
			return err
		}
		defer rec.close()
		go rec.loop(addr, time.Second)
	}
	var last metrics
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("soakd: %v (log: %s)", err, logPath)
			}
			keepDir = report(start, last, duration)
			stages.report()
			printVerdicts(filepath.Join(state, "report", "report.md"))
			return nil
		case <-tick.C:
			if m, err := scrape(addr); err == nil {
				last = m // the run stops its server at the end: keep the last full scrape
			}
			stages.poll(addr)
		}
	}
}

// printVerdicts prints the verdict table of the report soakd wrote when
// the run completed (the whole report stays in the state dir: pass
// -state-dir to keep it).
func printVerdicts(md string) {
	b, err := os.ReadFile(md)
	if err != nil {
		fmt.Printf("\nno run report: %v\n", err)
		return
	}
	text := string(b)
	if i := strings.Index(text, "## Verdicts"); i >= 0 {
		text = text[i:]
		if j := strings.Index(text[1:], "\n## "); j >= 0 {
			text = text[:j+1]
		}
	}
	fmt.Printf("\nthe run report's verdicts (%s):\n\n%s\n", md, strings.TrimSpace(text))
}

// metrics is one /metrics scrape: series name with labels -> value.
type metrics struct {
	at time.Time
	v  map[string]float64
}

func scrape(addr string) (metrics, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return metrics{}, err
	}
	defer resp.Body.Close()
	m := metrics{at: time.Now(), v: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m.v[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// sum adds the series of name whose labels contain every part of match.
func (m metrics) sum(name string, match ...string) float64 {
	t := 0.0
	for k, v := range m.v {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, s := range match {
			ok = ok && strings.Contains(k, s)
		}
		if ok {
			t += v
		}
	}
	return t
}

// series lists the label sets of name.
func (m metrics) series(name string) []string {
	var out []string
	for k := range m.v {
		if strings.HasPrefix(k, name+"{") {
			out = append(out, k[len(name):])
		}
	}
	sort.Strings(out)
	return out
}

// report prints the figures and says whether the soak found something
// worth keeping its state for: an invariant violation, an illegal history,
// or more alerts than the canary's one.
func report(start, end metrics, duration time.Duration) bool {
	if end.v == nil {
		fmt.Println("no scrape after the start: nothing to report")
		return true
	}
	const mib = 1 << 20
	secs := end.at.Sub(start.at).Seconds()
	fmt.Printf("\n== soak report: %s measured (after warm-up) of %s ==\n", end.at.Sub(start.at).Round(time.Second), duration)

	fmt.Println("\nalerts fired (the heap canary at 30m should be detected on heap_live_bytes: its alerts are the canary's; any other is a finding):")
	for _, s := range end.series("soakd_leak_alerts_total") {
		fmt.Printf("  %-40s %.0f\n", s, end.v["soakd_leak_alerts_total"+s])
	}
	for _, s := range end.series("soakd_leak_canary_detected_total") {
		if n := end.v["soakd_leak_canary_detected_total"+s]; n > 0 {
			fmt.Printf("  canary detected %-24s %.0f, %.0f s after its start\n", s, n, end.v["soakd_leak_canary_detection_seconds"+s])
		}
	}
	for _, s := range end.series("soakd_leak_canary_missed_total") {
		if n := end.v["soakd_leak_canary_missed_total"+s]; n > 0 {
			fmt.Printf("  CANARY MISSED %-26s %.0f (SoakdCanaryMissed: leak detection is broken)\n", s, n)
		}
	}

	if nodes := end.series("soakd_node_leak_alerts_total"); len(nodes) > 0 {
		fmt.Println("\nnode processes (each soaked like soakd; alerts fired, and the signal's first and last sample):")
		for _, s := range nodes {
			v := `soakd_node_leak_signal_value` + s
			fmt.Printf("  %-62s alerts %.0f  %.0f → %.0f\n", s, end.v["soakd_node_leak_alerts_total"+s], start.v[v], end.v[v])
		}
		for _, s := range end.series("soakd_node_leak_incarnations_total") {
			fmt.Printf("  %-62s processes seen %.0f, failed samples %.0f\n", s, end.v["soakd_node_leak_incarnations_total"+s],
				end.v["soakd_node_leak_sample_errors_total"+s])
		}
	}

	fmt.Println("\nleak signals (per minute; detectable, per window: the smallest leak the noise lets that window see):")
	for _, s := range end.series("soakd_leak_threshold_per_second") {
		sig := strings.TrimSuffix(strings.TrimPrefix(s, `{signal="`), `"}`)
		unit, scale := "/min", 60.0
		if sig == "heap_live_bytes" || sig == "rss_bytes" {
			unit, scale = " MiB/min", 60.0/mib
		}
		slope, judged := end.v["soakd_leak_slope_per_second"+s]
		if !judged {
			fmt.Printf("  %-16s threshold %8.2f%s  window still filling: not judged yet\n", sig,
				end.v["soakd_leak_threshold_per_second"+s]*scale, unit)
			continue
		}
		fmt.Printf("  %-16s threshold %8.2f%s  slope %8.2f%s  detectable", sig,
			end.v["soakd_leak_threshold_per_second"+s]*scale, unit, slope*scale, unit)
		for _, w := range end.series("soakd_leak_detectable_slope_per_second") {
			if strings.Contains(w, `signal="`+sig+`"`) { // one per window
				win := w[strings.Index(w, `window="`)+len(`window="`):]
				fmt.Printf("  %s %.2f", win[:strings.IndexByte(win, '"')], end.v["soakd_leak_detectable_slope_per_second"+w]*scale)
			}
		}
		fmt.Println()
	}

	heap := `{signal="heap_live_bytes"}`
	fmt.Printf("\nsoakd's own memory: RSS %.1f → %.1f MiB, live heap %.1f → %.1f MiB\n",
		start.v["process_resident_memory_bytes"]/mib, end.v["process_resident_memory_bytes"]/mib,
		start.v["soakd_leak_signal_value"+heap]/mib, end.v["soakd_leak_signal_value"+heap]/mib)

	ops := end.sum("soakd_ops_total") - start.sum("soakd_ops_total")
	cpu := end.v["process_cpu_seconds_total"] - start.v["process_cpu_seconds_total"]
	fmt.Printf("load: %.0f operations (%.1f/s), CPU %.0f s (%.0f%% of a core), %.0f µs CPU per operation\n",
		ops, ops/secs, cpu, 100*cpu/secs, 1e6*cpu/max(ops, 1))
	for _, s := range end.series("soakd_ops_total") {
		if d := end.v["soakd_ops_total"+s] - start.v["soakd_ops_total"+s]; d > 0 && !strings.Contains(s, `outcome="ok"`) {
			fmt.Printf("  not ok: %s %.0f\n", s, d)
		}
	}

	fmt.Println("\ncheckers:")
	for _, s := range end.series("soakd_checks_total") {
		fmt.Printf("  %-70s %.0f\n", s, end.v["soakd_checks_total"+s])
	}
	violations := end.sum("soakd_invariant_violations_total")
	fmt.Printf("  invariant violations: %.0f\n", violations)
	for _, s := range end.series("soakd_invariant_violations_total") {
		if v := end.v["soakd_invariant_violations_total"+s]; v > 0 {
			fmt.Printf("    %s %.0f\n", s, v)
		}
	}
	fmt.Printf("faults injected: %.0f\n", end.sum("soakd_faults_injected_total")-start.sum("soakd_faults_injected_total"))
	canaryAlerts := end.sum("soakd_leak_canary_detected_total") // at least one alert each
	return violations > 0 || end.sum("soakd_checks_total", `result="illegal"`) > 0 ||
		end.sum("soakd_leak_alerts_total") > max(canaryAlerts, 1) || end.sum("soakd_leak_canary_missed_total") > 0 ||
		end.sum("soakd_node_leak_alerts_total") > 0
}
