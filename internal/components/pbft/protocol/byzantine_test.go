package protocol

import (
	"errors"
	"testing"
)

// cluster drives replicas by hand: every message between the listed
// replicas is delivered (in send order) until none is left; messages to
// anyone else are kept in out.
type cluster struct {
	t    *testing.T
	reps map[ReplicaID]*Replica
	out  []Envelope
	errs []error
	tap  func(ReplicaID, Ready)
}

func newCluster(t *testing.T, n int, correct []ReplicaID, quorum int) *cluster {
	c := &cluster{t: t, reps: map[ReplicaID]*Replica{}}
	for _, id := range correct {
		r, err := NewReplica(Config{ID: id, N: n, App: &hashApp{}, UnsafePrepareQuorum: quorum})
		if err != nil {
			t.Fatal(err)
		}
		c.reps[id] = r
	}
	return c
}

func (c *cluster) step(to ReplicaID, m Message) {
	if err := c.reps[to].Step(m); err != nil {
		c.errs = append(c.errs, err)
	}
	c.settle()
}

func (c *cluster) settle() {
	for progress := true; progress; {
		progress = false
		for id := range ReplicaID(len(c.reps) + 4) {
			r := c.reps[id]
			if r == nil || !r.HasReady() {
				continue
			}
			progress = true
			rd := r.Ready()
			if c.tap != nil {
				c.tap(id, rd)
			}
			for _, env := range rd.Messages {
				for to, dst := range c.reps {
					if to != id && (env.All || env.To == to) {
						if err := dst.Step(env.Msg); err != nil {
							c.errs = append(c.errs, err)
						}
					}
				}
				c.out = append(c.out, env)
			}
		}
	}
}

func reason(err error) string {
	var rj *Rejected
	if errors.As(err, &rj) {
		return rj.Reason
	}
	return ""
}

func batchOf(client, ts uint64) []Request {
	return []Request{{Client: client, Timestamp: ts, Op: []byte{byte(client), byte(ts)}}}
}

func pp(v View, s Seq, batch []Request) Message {
	return Message{Kind: KindPrePrepare, From: ReplicaID(uint64(v) % 4), View: v, Seq: s, Digest: BatchDigest(batch), Batch: batch}
}

func TestRejections(t *testing.T) {
	c := newCluster(t, 4, []ReplicaID{1}, 0)
	r := c.reps[1]
	a, b := batchOf(1, 1), batchOf(2, 1)
	cases := []struct {
		m    Message
		want string
	}{
		{pp(0, 1, a), ""},
		{pp(0, 1, a), ""}, // a repeat is fine
		{pp(0, 1, b), ReasonEquivocation},
		{func() Message { m := pp(0, 2, a); m.Digest = BatchDigest(b); return m }(), ReasonBadDigest},
		{func() Message { m := pp(0, 2, a); m.From = 2; return m }(), ReasonNotPrimary},
		{pp(0, 1000, a), ReasonOutsideWatermarks},
		{Message{Kind: KindPrepare, From: 0, Seq: 1}, ReasonMalformed},
		{Message{Kind: KindCheckpoint, From: 2, Seq: 5}, ReasonMalformed},
		{Message{Kind: KindRequest}, ReasonMalformed},
		{Message{Kind: KindNewView, From: 3, View: 1, NewView: &NewView{}}, ReasonNotPrimary},
		{Message{Kind: KindNewView, From: 2, View: 2, NewView: &NewView{}}, ReasonBadNewView},
	}
	for i, tc := range cases {
		if got := reason(r.Step(tc.m)); got != tc.want {
			t.Errorf("case %d (%s): got %q, want %q", i, tc.m.Kind, got, tc.want)
		}
	}
}

// TestRequestsAtMostOnce: a repeated request gets the cached reply, an
// older one is ignored, a batch repeating an executed request does not
// execute it again.
func TestRequestsAtMostOnce(t *testing.T) {
	c := newCluster(t, 4, []ReplicaID{1, 2, 3}, 0) // the primary's messages by hand
	req := Request{Client: 7, Timestamp: 3, Op: []byte("x")}
	for _, id := range []ReplicaID{1, 2, 3} {
		c.step(id, Message{Kind: KindRequest, Request: &req})
	}
	for _, id := range []ReplicaID{1, 2, 3} {
		c.step(id, pp(0, 1, []Request{req}))
	}
	r := c.reps[2]
	app := r.cfg.App.(*hashApp)
	if st := r.Status(); st.LastExecuted != 1 || app.n != 1 || st.Pending != 0 {
		t.Fatalf("after one request: %+v, app executed %d", st, app.n)
	}
	if err := r.Step(Message{Kind: KindRequest, Request: &req}); err != nil {
		t.Fatal(err)
	}
	if rd := r.Ready(); len(rd.Replies) != 1 || rd.Replies[0].Reply.Timestamp != 3 {
		t.Fatalf("repeat: want the cached reply, got %+v", rd.Replies)
	}
	old := Request{Client: 7, Timestamp: 2, Op: []byte("y")}
	if got := reason(r.Step(Message{Kind: KindRequest, Request: &old})); got != ReasonStale {
		t.Fatalf("older request: %q, want stale", got)
	}
	// A (Byzantine) batch with the executed request again.
	var committed []Committed
	c.tap = func(id ReplicaID, rd Ready) {
		if id == 2 {
			committed = append(committed, rd.Committed...)
		}
	}
	for _, id := range []ReplicaID{1, 2, 3} {
		c.step(id, pp(0, 2, []Request{req, {Client: 8, Timestamp: 1, Op: []byte("z")}}))
	}
	if app.n != 2 || len(committed) != 1 || committed[0].Seq != 2 {
		t.Fatalf("executed %d requests (want 2), committed %+v", app.n, committed)
	}
	if res := committed[0].Results; len(res) != 2 || string(res[0]) != string(r.replies[7].result) {
		t.Fatalf("results %q: want the cached result for the repeat", res)
	}
}

// TestBadNewView: a new view whose pre-prepares differ from what its view
// changes decide is rejected.
func TestBadNewView(t *testing.T) {
	c := newCluster(t, 4, []ReplicaID{0, 1, 2, 3}, 0)
	a := batchOf(1, 1)
	m := pp(0, 1, a)
	// Seq 1 prepares everywhere but no commit reaches anyone: drop commits
	// by stepping only pre-prepare and prepares by hand.
	for _, id := range []ReplicaID{1, 2, 3} {
		_ = c.reps[id].Step(m)
	}
	var prepares []Message
	for _, id := range []ReplicaID{1, 2, 3} {
		for _, env := range c.reps[id].Ready().Messages {
			prepares = append(prepares, env.Msg)
		}
	}
	for _, p := range prepares {
		for _, id := range []ReplicaID{1, 2, 3} {
			if p.From != id {
				_ = c.reps[id].Step(p)
			}
		}
	}
	var vcs []Message
	for _, id := range []ReplicaID{1, 2, 3} {
		c.reps[id].Ready()
		c.reps[id].startViewChange(1)
		vcs = append(vcs, c.reps[id].vcs[id])
		c.reps[id].Ready()
	}
	plan, ok := NewViewPlan(4, 1, vcs)
	if !ok || len(plan.Batches) != 1 || plan.Batches[0].Digest != m.Digest {
		t.Fatalf("plan %+v %v, want seq 1 = A", plan, ok)
	}
	forged := batchOf(9, 9)
	bad := Message{Kind: KindNewView, From: 1, View: 1, NewView: &NewView{ViewChanges: vcs,
		PrePrepares: []Message{{Kind: KindPrePrepare, From: 1, View: 1, Seq: 1, Digest: BatchDigest(forged), Batch: forged}}}}
	if got := reason(c.reps[2].Step(bad)); got != ReasonBadNewView {
		t.Fatalf("forged new view: %q, want bad-new-view", got)
	}
	good := Message{Kind: KindNewView, From: 1, View: 1, NewView: &NewView{ViewChanges: vcs,
		PrePrepares: []Message{{Kind: KindPrePrepare, From: 1, View: 1, Seq: 1, Digest: m.Digest, Batch: a}}}}
	if err := c.reps[2].Step(good); err != nil {
		t.Fatalf("good new view: %v", err)
	}
	if st := c.reps[2].Status(); st.View != 1 || st.InViewChange {
		t.Fatalf("after the new view: %+v", st)
	}
}

// TestUnsafePrepareQuorum: an equivocating primary (0) sends A to 1 and 2
// and B to 3 at seq 1, and commits for both. With the real quorum (2f
// prepares) replica 3 never prepares B; with UnsafePrepareQuorum = f it
// does: two correct replicas hold conflicting prepared certificates for
// one (view, seq), which is what a checker must flag. They still cannot
// commit different batches: that needs two 2f+1 commit quorums, which
// intersect in a correct replica (one commit per view and seq), and the
// MAC new-view decision counts claims, not certificates.
func TestUnsafePrepareQuorum(t *testing.T) {
	for _, quorum := range []int{0, 1} {
		c := newCluster(t, 4, []ReplicaID{1, 2, 3}, quorum)
		a, b := batchOf(1, 1), batchOf(2, 1)
		c.reps[1].Step(pp(0, 1, a))
		c.reps[2].Step(pp(0, 1, a))
		c.reps[3].Step(pp(0, 1, b))
		c.settle()
		for id, batch := range map[ReplicaID][]Request{1: a, 2: a, 3: b} {
			c.step(id, Message{Kind: KindCommit, From: 0, Seq: 1, Digest: BatchDigest(batch)})
		}
		prepared := map[ReplicaID]bool{}
		for id, r := range c.reps {
			prepared[id] = r.log[1] != nil && r.log[1].prepared
		}
		conflict := prepared[3] && (prepared[1] || prepared[2])
		if conflict != (quorum == 1) {
			t.Errorf("quorum %d: prepared %v, want conflicting certificates only with the unsafe quorum", quorum, prepared)
		}
		if got := c.reps[3].Status().LastExecuted; got != 0 {
			t.Errorf("quorum %d: replica 3 executed B", quorum)
		}
		if c.reps[1].Status().LastExecuted != 1 {
			t.Errorf("quorum %d: replica 1 did not execute A", quorum)
		}
	}
}

// TestRestore: a replica restarted from its last stable checkpoint and
// the batches after it reaches the same state.
func TestRestore(t *testing.T) {
	s := newSim(t, simOptions{n: 4, seed: 1, clients: 3, requests: 20, maxDelay: 1,
		config: func(c *Config) { c.BatchSize = 1; c.CheckpointInterval = 4 }})
	var cps []Checkpoint
	var after []Committed
	s.tap = func(i int, rd Ready) {
		if i != 2 {
			return
		}
		cps = append(cps, rd.Checkpoints...)
		after = append(after, rd.Committed...)
	}
	s.run(2000)
	if len(cps) == 0 {
		t.Fatal("no checkpoints")
	}
	cp := cps[len(cps)-2]
	var rest []Committed
	for _, c := range after {
		if c.Seq > cp.Seq {
			rest = append(rest, c)
		}
	}
	app := &hashApp{}
	r, err := NewReplica(Config{ID: 2, N: 4, App: app, CheckpointInterval: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(cp, rest); err != nil {
		t.Fatal(err)
	}
	want := s.reps[2]
	if r.Status().LastExecuted != want.Status().LastExecuted || string(app.Snapshot()) != string(want.cfg.App.Snapshot()) {
		t.Fatalf("restored %+v, want %+v", r.Status(), want.Status())
	}
	if len(r.replies) != len(want.replies) {
		t.Fatalf("reply cache: %d clients, want %d", len(r.replies), len(want.replies))
	}
}
