package nodeproc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
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
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// servingRE finds the address in the node's "serving HTTP" log line.
var servingRE = regexp.MustCompile(`msg="serving HTTP" addr=(\S+)`)

// StartTimeout bounds the wait for a new node process to serve HTTP.
const StartTimeout = 30 * time.Second

// Spawn starts bin with args (a `soakd node` command line) and waits until
// it logs that it serves HTTP. An error quotes the process's last lines.
func Spawn(bin string, args []string) (*Proc, error) {
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
	exited := make(chan struct{})
	tail := &lastLines{max: 20}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
			tail.add(line)
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case addr := <-addrc:
		return &Proc{cmd: cmd, HTTPAddr: addr, exited: exited}, nil
	case <-exited:
		return nil, fmt.Errorf("exited at start: %s", tail)
	case <-time.After(StartTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("did not serve within %s: %s", StartTimeout, tail)
	}
}

// Stop ends the process: SIGKILL when crash, else SIGTERM and, after
// 5 s, SIGKILL. It returns once the process has exited.
func (p *Proc) Stop(crash bool) {
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
