package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// recorder keeps the leak signals' series of a real soak as the raw
// material of the detector's noise models and regression tests: one file
// per signal, a line per sample soakd took (a scrape every second catches
// each one by soakd_leak_samples_total): seconds since the recording
// began, the sampled value, and 1 where a fault disturbed the signal (the
// detector leaves those samples out of its windows).
type recorder struct {
	dir   string
	start time.Time
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	files map[string]*bufio.Writer
	osf   []*os.File
	seen  map[string]float64 // soakd_leak_samples_total last written, per signal
}

func newRecorder(dir string, start time.Time) (*recorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &recorder{dir: dir, start: start, stop: make(chan struct{}), done: make(chan struct{}),
		files: map[string]*bufio.Writer{}, seen: map[string]float64{}}, nil
}

func (r *recorder) loop(addr string, every time.Duration) {
	defer close(r.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		m, err := scrape(addr)
		if err != nil {
			continue // the run may be stopping; a gap is honest
		}
		for _, s := range m.series("soakd_leak_signal_value") {
			sig := strings.TrimSuffix(strings.TrimPrefix(s, `{signal="`), `"}`)
			n := m.v["soakd_leak_samples_total"+s]
			if n == r.seen[sig] {
				continue // no new sample since the last scrape
			}
			r.seen[sig] = n
			if err := r.write(sig, m.at.Sub(r.start), m.v["soakd_leak_signal_value"+s],
				m.v["soakd_leak_signal_disturbed"+s]); err != nil {
				fmt.Fprintln(os.Stderr, "soak: record:", err)
				return
			}
		}
		for _, w := range r.files {
			_ = w.Flush() // a recording can be read while the soak runs
		}
	}
}

func (r *recorder) write(sig string, at time.Duration, v, disturbed float64) error {
	w, ok := r.files[sig]
	if !ok {
		f, err := os.Create(filepath.Join(r.dir, sig+".tsv"))
		if err != nil {
			return err
		}
		r.osf = append(r.osf, f)
		w = bufio.NewWriter(f)
		fmt.Fprintf(w, "# seconds\t%s\tdisturbed\n", sig)
		r.files[sig] = w
	}
	_, err := fmt.Fprintf(w, "%.0f\t%.0f\t%.0f\n", at.Seconds(), v, disturbed)
	return err
}

// close stops the loop and flushes every file.
func (r *recorder) close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	for _, w := range r.files {
		_ = w.Flush()
	}
	for _, f := range r.osf {
		_ = f.Close()
	}
}
