package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"

	"github.com/soakd/soakd/internal/components"
)

// benchLevels: concurrent clients and the fixed number of puts each level
// runs (fixed so one run takes well under two minutes).
var benchLevels = []struct{ clients, ops int }{{1, 400}, {16, 3000}, {256, 8000}}

type benchFigures struct {
	p50, p99   time.Duration
	throughput float64 // ops/s
}

// runLevel runs ops puts from clients goroutines through apply and measures
// each put's latency.
func runLevel(b *testing.B, clients, ops int, apply func(i int) error) benchFigures {
	b.Helper()
	lat := make([]time.Duration, ops)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= ops {
					return
				}
				t0 := time.Now()
				if err := apply(i); err != nil {
					failed.Add(1)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d puts failed", n, ops)
	}
	slices.Sort(lat)
	return benchFigures{p50: lat[ops/2], p99: lat[ops*99/100], throughput: float64(ops) / elapsed.Seconds()}
}

// bareCluster is the baseline: 3 bare hashicorp/raft nodes with the same
// timing as soakd's. With durable set they use soakd's store and transport
// (raft-boltdb with fsync behind the same log cache, the file snapshot
// store, hashicorp/raft's TCP transport on loopback), so soakd/bare
// isolates what soakd adds; without it, in-memory stores and transport, the
// library's ceiling on this machine.
type bareCluster struct{ rafts []*hraft.Raft }

type bareFSM struct {
	mu sync.Mutex
	kv map[string][]byte
}

func (f *bareFSM) Apply(l *hraft.Log) interface{} {
	c, err := decodeCommand(l.Data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.kv[c.key] = c.value
	f.mu.Unlock()
	return nil
}
func (f *bareFSM) Snapshot() (hraft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (f *bareFSM) Restore(rc io.ReadCloser) error       { return rc.Close() }

type bareNode struct {
	trans  hraft.Transport
	logs   hraft.LogStore
	stable hraft.StableStore
	snaps  hraft.SnapshotStore
	close  func() error
}

func newBareNode(b *testing.B, i int, durable bool) bareNode {
	b.Helper()
	if !durable {
		_, t := hraft.NewInmemTransport(hraft.ServerAddress(fmt.Sprint("bare-", i)))
		s := hraft.NewInmemStore()
		return bareNode{trans: t, logs: s, stable: s, snaps: hraft.NewInmemSnapshotStore(), close: t.Close}
	}
	dir := b.TempDir()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, logStoreFile)})
	if err != nil {
		b.Fatal(err)
	}
	logs, err := hraft.NewLogCache(logCacheSize, store)
	if err != nil {
		b.Fatal(err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(dir, snapshotRetain, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	t, err := hraft.NewTCPTransportWithLogger("127.0.0.1:0", nil, transportMaxPool, transportTimeout, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	return bareNode{trans: t, logs: logs, stable: store, snaps: snaps, close: func() error {
		t.CloseStreams() // the pooled connections: their peers' handlers end on EOF
		return errors.Join(t.Close(), store.Close())
	}}
}

func newBareCluster(b *testing.B, durable bool) *bareCluster {
	b.Helper()
	var nodes []bareNode
	var servers []hraft.Server
	for i := range 3 {
		n := newBareNode(b, i, durable)
		nodes = append(nodes, n)
		addr := n.trans.LocalAddr()
		servers = append(servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(addr), Address: addr})
	}
	if !durable {
		for _, a := range nodes {
			for _, o := range nodes {
				if a.trans != o.trans {
					a.trans.(*hraft.InmemTransport).Connect(o.trans.LocalAddr(), o.trans)
				}
			}
		}
	}
	bc := &bareCluster{}
	for i, n := range nodes {
		conf := hraft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = heartbeatTimeout, electionTimeout, leaderLeaseTimeout
		conf.SnapshotThreshold = 1 << 40 // no snapshots: the bare FSM has none
		conf.Logger = hclog.NewNullLogger()
		if err := hraft.BootstrapCluster(conf, n.logs, n.stable, n.snaps, n.trans, hraft.Configuration{Servers: servers}); err != nil {
			b.Fatal(err)
		}
		r, err := hraft.NewRaft(conf, &bareFSM{kv: map[string][]byte{}}, n.logs, n.stable, n.snaps, n.trans)
		if err != nil {
			b.Fatal(err)
		}
		bc.rafts = append(bc.rafts, r)
	}
	b.Cleanup(func() {
		for _, r := range bc.rafts {
			_ = r.Shutdown().Error()
		}
		for _, n := range nodes {
			_ = n.close()
		}
	})
	return bc
}

func (bc *bareCluster) leader(b *testing.B) *hraft.Raft {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range bc.rafts {
			if r.State() == hraft.Leader {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("bare cluster: no leader")
	return nil
}

// BenchmarkRaft measures commit latency and throughput of puts at 1, 16 and
// 256 concurrent clients through soakd's component (TCP on loopback, bbolt
// with fsync, the Dialer hook, the client's classification and recording)
// and through bare hashicorp/raft on the same store and transport (bare_*,
// ratios soakd/bare: what soakd adds) and in memory (inmem_*: the library's
// ceiling here), all from the same run.
func BenchmarkRaft(b *testing.B) {
	for range b.N {
		c, _ := testCluster(b, 3, nil, defaultOptions())
		rec := &countRecorder{}
		c.SetRecorder(rec)
		same, inmem := newBareCluster(b, true), newBareCluster(b, false)
		val := make([]byte, 64)
		for _, lv := range benchLevels {
			soakd := runLevel(b, lv.clients, lv.ops, func(i int) error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r := c.Do(ctx, components.Op{Name: "put", Key: fmt.Sprint("k", i%1000), Value: val})
				return r.Err
			})
			put := func(bc *bareCluster) benchFigures {
				ld := bc.leader(b)
				return runLevel(b, lv.clients, lv.ops, func(i int) error {
					cmd := encodeCommand(command{op: opPut, key: fmt.Sprint("k", i%1000), value: val})
					return ld.Apply(cmd, 10*time.Second).Error()
				})
			}
			bare, mem := put(same), put(inmem)
			p := fmt.Sprintf("c%d_", lv.clients)
			b.ReportMetric(mem.throughput, p+"inmem_ops/s")
			b.ReportMetric(soakd.throughput/mem.throughput, p+"tput_ratio_inmem")
			b.ReportMetric(float64(soakd.p50.Microseconds()), p+"soakd_p50_us")
			b.ReportMetric(float64(soakd.p99.Microseconds()), p+"soakd_p99_us")
			b.ReportMetric(soakd.throughput, p+"soakd_ops/s")
			b.ReportMetric(float64(bare.p50.Microseconds()), p+"bare_p50_us")
			b.ReportMetric(float64(bare.p99.Microseconds()), p+"bare_p99_us")
			b.ReportMetric(bare.throughput, p+"bare_ops/s")
			b.ReportMetric(float64(soakd.p50)/float64(bare.p50), p+"p50_ratio")
			b.ReportMetric(float64(soakd.p99)/float64(bare.p99), p+"p99_ratio")
			b.ReportMetric(soakd.throughput/bare.throughput, p+"tput_ratio")
			b.Logf("clients=%-3d ops=%-5d soakd p50=%-9v p99=%-9v %7.0f ops/s | bare (same store, TCP) p50=%-9v p99=%-9v %7.0f ops/s | ratio p50 %.1fx p99 %.1fx tput %.2fx | bare in memory %7.0f ops/s (soakd %.2fx)",
				lv.clients, lv.ops, soakd.p50, soakd.p99, soakd.throughput, bare.p50, bare.p99, bare.throughput,
				float64(soakd.p50)/float64(bare.p50), float64(soakd.p99)/float64(bare.p99), soakd.throughput/bare.throughput,
				mem.throughput, soakd.throughput/mem.throughput)
		}
		fs := fsyncP50(b)
		b.ReportMetric(float64(fs.Microseconds()), "fsync_p50_us")
		b.Logf("fsync of a 4 KiB write on the state dir's disk: p50 %v (a soakd commit waits for the leader's and a follower's in sequence)", fs)
		if rec.n.Load() == 0 {
			b.Fatal("recorder saw nothing")
		}
	}
}

type countRecorder struct{ n atomic.Int64 }

func (r *countRecorder) Record(HistoryOp) { r.n.Add(1) }

// fsyncP50 measures the disk under the state dir: the floor of a durable
// commit, which the in-memory baseline does not pay.
func fsyncP50(b *testing.B) time.Duration {
	f, err := os.CreateTemp(b.TempDir(), "fsync")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var lat []time.Duration
	for range 50 {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}
