package resource

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StressCommand is the subcommand a resource child runs: `soakd stress`.
const StressCommand = "stress"

// slice is the period a burner keeps its duty cycle over.
const slice = 10 * time.Millisecond

// Stress runs a resource child until it is killed, stop closes or its
// parent dies: `cpu --cores N --load PERCENT`, `memory --bytes N [--rate
// BYTES/S] --floor BYTES`, `io --file FILE --bytes N --floor BYTES`. A child
// reports its progress as lines on stdout.
func Stress(args []string, stdout, stderr io.Writer, stop <-chan struct{}) error {
	if len(args) == 0 {
		return errors.New("stress: want a kind: cpu, memory or io")
	}
	fs := flag.NewFlagSet("stress "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "cpu":
		cores := fs.Int("cores", 1, "cores to burn")
		load := fs.Float64("load", 100, "share of each core, percent")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *cores < 1 || *cores > runtime.NumCPU() || !(*load > 0 && *load <= 100) {
			return fmt.Errorf("stress cpu: cores must be 1..%d and load in (0, 100], got %d and %v", runtime.NumCPU(), *cores, *load)
		}
		stop, quit := orphaned(stop)
		defer quit()
		burn(*cores, *load/100, stop)
		return nil
	case "memory":
		size := fs.Int64("bytes", 0, "bytes to hold")
		rate := fs.Float64("rate", 0, "growth in bytes per second (0: at once)")
		floor := fs.Int64("floor", 1<<30, "MemAvailable never falls below this")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *size <= 0 || *rate < 0 || *floor < 0 {
			return fmt.Errorf("stress memory: want bytes > 0, rate >= 0, floor >= 0, got %d, %v, %d", *size, *rate, *floor)
		}
		stop, quit := orphaned(stop)
		defer quit()
		return holdMemory(*size, *rate, *floor, stdout, stop)
	case "io":
		file := fs.String("file", "", "file to rewrite with fsync")
		size := fs.Int64("bytes", 64<<20, "size of the file")
		floor := fs.Int64("floor", 1<<30, "free space never falls below this")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *file == "" || *size <= 0 || *floor < 0 {
			return fmt.Errorf("stress io: want a file, bytes > 0 and floor >= 0")
		}
		stop, quit := orphaned(stop)
		defer quit()
		return churnIO(*file, *size, *floor, stdout, stop)
	}
	return fmt.Errorf("stress: unknown kind %q (want cpu, memory or io)", args[0])
}

// burn keeps cores goroutines busy for share of every slice until stop.
func burn(cores int, share float64, stop <-chan struct{}) {
	runtime.GOMAXPROCS(cores)
	busy := time.Duration(float64(slice) * share)
	var wg sync.WaitGroup
	for range cores {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				for time.Since(start) < busy {
				}
				if idle := slice - busy; idle > 0 {
					time.Sleep(idle)
				}
			}
		})
	}
	wg.Wait()
}

// orphaned is stop, also closed when the parent goes away: Pdeathsig
// fires when the thread that started the child exits, so the child also
// watches for being re-parented. quit ends the watch.
func orphaned(stop <-chan struct{}) (<-chan struct{}, func()) {
	out, done := make(chan struct{}), make(chan struct{})
	finished := make(chan struct{})
	parent := os.Getppid()
	go func() {
		defer close(finished)
		defer close(out)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-done:
				return
			case <-t.C:
				if os.Getppid() != parent {
					return
				}
			}
		}
	}()
	return out, func() {
		close(done)
		<-finished
	}
}

// StopOnSignal is a stop channel closed by SIGTERM or SIGINT, for the
// stress subcommand's main.
func StopOnSignal() <-chan struct{} {
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		close(stop)
	}()
	return stop
}

// child is a running stress process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the child has exited; err is then set
	err  error

	mu       sync.Mutex
	last     string        // the child's last progress line
	progress chan struct{} // ticks (capacity 1) on each new line
}

// startChild re-executes this binary as `stress args...`, killed with its
// parent.
func startChild(args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("resource child: %w", err)
	}
	cmd := exec.Command(exe, append([]string{StressCommand}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Env = append(os.Environ(), stressEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("resource child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("resource child: %w", err)
	}
	c := &child{cmd: cmd, done: make(chan struct{}), progress: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.last = sc.Text()
			c.mu.Unlock()
			select {
			case c.progress <- struct{}{}:
			default:
			}
		}
		err := cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		c.err = err
		close(c.done)
	}()
	return c, nil
}

// lastLine is the child's last progress line.
func (c *child) lastLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}

// stressEnv marks a resource child, so a test binary's TestMain can run
// Stress instead of the tests.
const stressEnv = "SOAKD_STRESS_CHILD"

// IsChild reports whether this process is a resource child.
func IsChild() bool { return os.Getenv(stressEnv) == "1" }

// stop kills the child and waits for it.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("resource child %d did not exit", c.cmd.Process.Pid)
	}
}

// cpuTime is the child's CPU time so far (user + system, /proc).
func (c *child) cpuTime() (time.Duration, error) {
	return procCPUTime(c.cmd.Process.Pid)
}

// procCPUTime reads utime and stime of pid from /proc/pid/stat.
func procCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is state (field 3); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat times")
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}
