package nodeproc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/soakd/soakd/internal/fsutil"
)

// Proc is a running node process.
type Proc struct {
	cmd *exec.Cmd
	// HTTPAddr is where the node serves its API, /metrics and pprof.
	HTTPAddr string
	exited   chan struct{}
	stopping atomic.Bool
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Alive reports whether the process has not exited (nil: no process).
func (p *Proc) Alive() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// servingRE finds the address in the node's "serving HTTP" log line.
var servingRE = regexp.MustCompile(`msg="serving HTTP" addr=(\S+)`)

// StartTimeout bounds the wait for a new node process to serve HTTP.
const StartTimeout = 30 * time.Second

// EventExited is journaled when a node process exits without soakd
// asking (a crash of the node's own making).
const EventExited = "node_process_exited"

// Spawn starts bin with args (a `soakd node` command line) and waits until
// it logs that it serves HTTP. An error quotes the process's last lines.
// Its warnings and errors go on to log. An exit Stop did not ask for is
// logged with its last lines and given to exited (nil: none), to journal.
func Spawn(bin string, args []string, log *slog.Logger, exited func(err error, lastLines string)) (*Proc, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = nodeSysProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addrc := make(chan string, 1)
	p := &Proc{cmd: cmd, exited: make(chan struct{})}
	var started atomic.Bool // an exit at start is Spawn's error, not news
	tail := &lastLines{max: 20}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				started.Store(true)
				select {
				case addrc <- m[1]:
				default:
				}
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				log.Warn("node process", "pid", cmd.Process.Pid, "line", line)
			}
			tail.add(line)
		}
		_, _ = io.Copy(io.Discard, stderr)
		err := cmd.Wait()
		if !p.stopping.Load() && started.Load() {
			log.Error("node process exited on its own", "pid", cmd.Process.Pid, "err", err, "last_lines", tail.String())
			if exited != nil {
				exited(err, tail.String())
			}
		}
		close(p.exited)
	}()
	select {
	case addr := <-addrc:
		p.HTTPAddr = addr
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("exited at start: %s", tail)
	case <-time.After(StartTimeout):
		p.stopping.Store(true)
		_ = cmd.Process.Kill()
		<-p.exited
		return nil, fmt.Errorf("did not serve within %s: %s", StartTimeout, tail)
	}
}

// Journal is Spawn's exited hook that journals EventExited for a node of
// component through event.
func Journal(event func(string, map[string]any), component, node string) func(error, string) {
	return func(err error, last string) {
		event(EventExited, map[string]any{"component": component, "node": node, "error": fmt.Sprint(err), "last_lines": last})
	}
}

// Stop ends the process: SIGKILL when crash, else SIGTERM and, after
// 5 s, SIGKILL. It returns once the process has exited.
func (p *Proc) Stop(crash bool) {
	p.stopping.Store(true)
	sig := syscall.SIGTERM
	if crash {
		sig = syscall.SIGKILL
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// lastLines keeps a process's last lines of output for an error message.
type lastLines struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *lastLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == l.max {
		l.lines = l.lines[1:]
	}
	l.lines = append(l.lines, s)
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.lines)
}

// MembersFile keeps the nodes' protocol addresses, chosen once: every
// restart of every node needs the same peer list.
const MembersFile = "members.json"

// Members reads the protocol addresses of nodes node-1..node-n from
// dir/members.json, or picks free loopback ports for them and writes the
// file on the first start of a run.
func Members(dir string, n int) (map[string]string, error) {
	path := filepath.Join(dir, MembersFile)
	var m map[string]string
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &m); err != nil || len(m) != n {
			return nil, fmt.Errorf("%s: not %d members (the number of nodes cannot change in a run)", path, n)
		}
		return m, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	m = map[string]string{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a node address: %w", err)
		}
		m[fmt.Sprintf("node-%d", i)] = ln.Addr().String()
		_ = ln.Close()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b, _ = json.MarshalIndent(m, "", "  ")
	if err := fsutil.WriteBytes(path, 0o600, append(b, '\n')); err != nil {
		return nil, err
	}
	return m, nil
}
