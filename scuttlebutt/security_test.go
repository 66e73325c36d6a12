//go:debug rsa1024min=0

package scuttlebutt_test

// Signed updates: Ed25519 and RSASHA1 (npm scuttlebutt's security.js),
// relayed through replicas without security, and every kind of bad update
// a peer can send: forged, from an unknown key, replayed, tampered,
// unsigned. The RSA keys are npm scuttlebutt's 768-bit test keys (see
// interop/sb-keys/README.md), which Go accepts only with the //go:debug
// line above.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// secKey returns a deterministic ed25519 key.
func secKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// secRSA reads an npm scuttlebutt test key pair ("test1" or "test2").
func secRSA(t testing.TB, name string, keys scuttlebutt.KeyStore) *scuttlebutt.RSASHA1 {
	t.Helper()
	sec, err := scuttlebutt.NewRSASHA1(secFile(t, name+".key"), secFile(t, name+".pem"), keys)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func secFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "interop", "sb-keys", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secNewRSAPEM returns a new 1024-bit key pair as PKCS#1 PEM files.
func secNewRSAPEM(t testing.TB) (priv, pub []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	priv = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	pub = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)})
	return priv, pub
}

// secRecorder records what a replica reports.
type secRecorder struct {
	mu         sync.Mutex
	unverified []string // update lines
	errs       []error
	updates    []string
}

func secRecord(r *scuttlebutt.Replica) *secRecorder {
	rec := &secRecorder{}
	r.OnUnverified(func(u scuttlebutt.Update, err error) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.unverified = append(rec.unverified, u.String())
		rec.errs = append(rec.errs, err)
	})
	r.OnUpdate(func(u scuttlebutt.Update) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.updates = append(rec.updates, u.String())
	})
	return rec
}

func (rec *secRecorder) snapshot() (unverified []string, errs []error, updates []string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.unverified...), append([]error(nil), rec.errs...), append([]string(nil), rec.updates...)
}

// secValues are values that JSON serializers disagree on.
var secValues = map[string]any{
	"ascii":   "hello",
	"unicode": "h\u00e9llo\u20ac\U0001F600\u2028\u2029\x7f\x01<&>\"\\",
	"object":  json.RawMessage(`{"b":1,"2":2,"1":3,"a":[-0,1e21,1e-7,null,true,0.1]}`),
	"number":  1700000000000.001,
}

// A signed replica's updates reach another signed replica through a
// replica without security, which stores and forwards them untouched, in
// both directions.
func TestSecEd25519ThroughUnsignedRelay(t *testing.T) {
	ka, kb := secKey(1), secKey(2)
	a := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(ka, nil)))
	b := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(kb, nil)))
	if want := scuttlebutt.Ed25519ID(ka.Public().(ed25519.PublicKey)); a.ID() != want {
		t.Fatalf("a.ID() = %q, want %q", a.ID(), want)
	}
	m := model.New("M")
	recA, recB := secRecord(a.Replica), secRecord(b.Replica)
	am := utConnect(a.Replica, m.Replica, nil, nil)
	mb := utConnect(m.Replica, b.Replica, nil, nil)
	for k, v := range secValues {
		if err := a.Set("a-"+k, v); err != nil {
			t.Fatal(err)
		}
		if err := b.Set("b-"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	utPump(t, am, mb)
	for _, r := range []*model.Model{a, m, b} {
		if r.Len() != 2*len(secValues) {
			t.Fatalf("%s has %d keys, want %d: %v", r.ID(), r.Len(), 2*len(secValues), r.Keys())
		}
	}
	for k := range secValues {
		for _, p := range []string{"a-", "b-"} {
			va, _ := a.Get(p + k)
			vb, _ := b.Get(p + k)
			if !bytes.Equal(va, vb) {
				t.Fatalf("%s%s: a has %s, b has %s", p, k, va, vb)
			}
		}
	}
	for name, rec := range map[string]*secRecorder{"a": recA, "b": recB} {
		if unv, _, _ := rec.snapshot(); len(unv) != 0 {
			t.Fatalf("%s rejected %q", name, unv)
		}
	}
	// The relay kept each signature as the update's fourth element.
	for _, u := range m.History(nil) {
		if len(u.Extra) != 1 || !strings.HasSuffix(string(u.Extra[0]), `.sig.ed25519"`) {
			t.Fatalf("relay holds %s, want it signed", u)
		}
	}
}

// secCase is one bad update a hostile peer sends to a verifying replica.
type secCase struct {
	name    string
	line    string // the update line
	wantErr error  // what OnUnverified reports (wrapped in ErrUnverified); nil: dropped as old data
}

// secWorld is a verifying replica v, an honest signed source a linked to v
// through an unsigned relay m, and a witness w linked to v, which must
// never receive what v rejects.
type secWorld struct {
	v, a, m, w *model.Model
	rec        *secRecorder
	links      []*utPair
	newSec     func(t *testing.T) scuttlebutt.Security // a key of a third party
}

func (sw *secWorld) pump(t *testing.T) { utPump(t, sw.links...) }

func newSecWorld(t *testing.T, secV, secA scuttlebutt.Security) *secWorld {
	sw := &secWorld{
		v: model.New("", scuttlebutt.WithSecurity(secV)),
		a: model.New("", scuttlebutt.WithSecurity(secA)),
		m: model.New("M"),
		w: model.New("W"),
	}
	sw.rec = secRecord(sw.v.Replica)
	sw.links = []*utPair{
		utConnect(sw.a.Replica, sw.m.Replica, nil, nil),
		utConnect(sw.m.Replica, sw.v.Replica, nil, nil),
		utConnect(sw.v.Replica, sw.w.Replica, nil, nil),
	}
	return sw
}

// signLine returns the wire line of change signed by sec at ts.
func signLine(t *testing.T, sec scuttlebutt.Security, source, change string, ts float64) string {
	t.Helper()
	u := scuttlebutt.Update{Change: json.RawMessage(change), Timestamp: ts, Source: source}
	sig, err := sec.Sign(u)
	if err != nil {
		t.Fatal(err)
	}
	u.Extra = []json.RawMessage{sig}
	return u.String()
}

// secCases returns the bad updates for a world whose source a has already
// sent its first update, good.
//
// The tampered cases change a genuine update of a that v has not seen (it
// is never delivered): a changed copy of one v has is merely old data.
func secCases(t *testing.T, sw *secWorld, secA, other scuttlebutt.Security, delivered string) []secCase {
	future := float64(time.Now().Add(5 * time.Minute).UnixMilli())
	aID := sw.a.ID()
	good := signLine(t, secA, aID, `["k","genuine"]`, future)
	var goodU []json.RawMessage
	if err := json.Unmarshal([]byte(good), &goodU); err != nil {
		t.Fatal(err)
	}
	tamper := func(i int, v string) string {
		parts := append([]json.RawMessage(nil), goodU...)
		parts[i] = json.RawMessage(v)
		b, _ := json.Marshal(parts)
		return string(b)
	}
	cases := []secCase{
		// Signed with another key, as a, five minutes ahead: if it moved
		// a's clock, a's real updates would be old data here for five
		// minutes.
		{"forged", signLine(t, other, aID, `["k","forged"]`, future), scuttlebutt.ErrUnverified},
		{"tamperedChange", tamper(0, `["k","tampered"]`), scuttlebutt.ErrUnverified},
		{"tamperedTimestamp", tamper(1, fmt.Sprint(future+1)), scuttlebutt.ErrUnverified},
		{"unsigned", fmt.Sprintf(`[["k","unsigned"],%v,%q]`, future, aID), scuttlebutt.ErrUnverified},
		{"signatureNotString", fmt.Sprintf(`[["k","n"],%v,%q,5]`, future, aID), scuttlebutt.ErrUnverified},
		{"twoSignatures", good[:len(good)-1] + "," + string(goodU[3]) + "]", scuttlebutt.ErrUnverified},
		{"replayed", delivered, nil},
		{"forgedAsVerifier", signLine(t, other, sw.v.ID(), `["k","mine"]`, future), scuttlebutt.ErrUnverified},
	}
	cases = append(cases, secCase{"unknownKey", signLine(t, other, other.ID(), `["k","stranger"]`, future), scuttlebutt.ErrUnknownKey})
	return cases
}

// checkSecCases writes each bad update on a hostile stream to v and checks
// that v rejects it without harm: not applied, clock unchanged, not
// forwarded, reported (or dropped as old), the hostile stream open; and
// that a's real updates still flow.
func checkSecCases(t *testing.T, sw *secWorld, cases []secCase) {
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := sw.v.Clock()
			valueBefore, _ := sw.v.Get("k")
			unv0, _, upd0 := sw.rec.snapshot()
			var old []string
			remove := sw.v.OnOldData(func(u scuttlebutt.Update) { old = append(old, u.String()) })
			defer remove()

			h := sw.v.NewStream()
			utWrite(t, h, utPeerHeader, `"SYNC"`, c.line)
			utDrain(t, h)
			if err := h.Err(); err != nil {
				t.Fatalf("hostile stream failed: %v", err)
			}
			h.Close()
			sw.pump(t)

			unv, errs, upd := sw.rec.snapshot()
			if len(upd) != len(upd0) {
				t.Fatalf("applied %q", upd[len(upd0):])
			}
			if got := sw.v.Clock(); fmt.Sprint(got) != fmt.Sprint(before) {
				t.Fatalf("clock moved from %v to %v", before, got)
			}
			if v, _ := sw.v.Get("k"); !bytes.Equal(v, valueBefore) {
				t.Fatalf("k = %s, was %s", v, valueBefore)
			}
			if c.wantErr == nil {
				if len(unv) != len(unv0) || len(old) != 1 {
					t.Fatalf("replay: unverified %q, old data %q; want it dropped as old data", unv[len(unv0):], old)
				}
			} else {
				if len(unv) != len(unv0)+1 {
					t.Fatalf("OnUnverified got %q, want the update once", unv[len(unv0):])
				}
				if !errors.Is(errs[len(errs)-1], scuttlebutt.ErrUnverified) || !errors.Is(errs[len(errs)-1], c.wantErr) {
					t.Fatalf("OnUnverified error %v, want one wrapping %v and ErrUnverified", errs[len(errs)-1], c.wantErr)
				}
			}
			inV := map[string]bool{}
			for _, u := range sw.v.History(nil) {
				inV[u.String()] = true
			}
			for _, u := range sw.w.History(nil) {
				if !inV[u.String()] {
					t.Fatalf("witness got %s, which the verifier does not hold", u)
				}
			}
			if v, _ := sw.w.Get("k"); string(v) != `"real"` {
				t.Fatalf("witness: k = %s", v)
			}
			// a's next real update still arrives, though the forgery was
			// stamped five minutes ahead.
			key := fmt.Sprintf("after-%d", i)
			if err := sw.a.Set(key, c.name); err != nil {
				t.Fatal(err)
			}
			sw.pump(t)
			for _, r := range []*model.Model{sw.v, sw.w} {
				if v, _ := r.Get(key); string(v) != fmt.Sprintf("%q", c.name) {
					t.Fatalf("%s: %s = %s, want a's real update", r.ID(), key, v)
				}
			}
		})
	}
}

func TestSecEd25519Rejects(t *testing.T) {
	secA, secOther := scuttlebutt.NewEd25519(secKey(1), nil), scuttlebutt.NewEd25519(secKey(3), nil)
	trusted := &scuttlebutt.Keys{}
	trusted.Add(secA.ID(), secKey(1).Public().(ed25519.PublicKey))
	secV := scuttlebutt.NewEd25519(secKey(2), trusted)
	sw := newSecWorld(t, secV, secA)
	if err := sw.a.Set("k", "real"); err != nil {
		t.Fatal(err)
	}
	sw.pump(t)
	good := sw.a.History(nil)[0].String()
	checkSecCases(t, sw, secCases(t, sw, secA, secOther, good))

	// Without a key store any ed25519 id is accepted, as long as its own
	// key signed it: the id is the key.
	open := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(4), nil)))
	s := open.NewStream()
	utWrite(t, s, utPeerHeader, signLine(t, secOther, secOther.ID(), `["k","stranger"]`, 5))
	if v, _ := open.Get("k"); string(v) != `"stranger"` {
		t.Fatalf("open replica: k = %s, want the stranger's update", v)
	}
}

func TestSecRSARejects(t *testing.T) {
	keys := &scuttlebutt.Keys{}
	secA := secRSA(t, "test1", keys)
	secV := secRSA(t, "test2", keys)
	keys.Add(secA.ID(), secFile(t, "test1.pem"))
	priv, pub := secNewRSAPEM(t)
	secOther, err := scuttlebutt.NewRSASHA1(priv, pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	sw := newSecWorld(t, secV, secA)
	if err := sw.a.Set("k", "real"); err != nil {
		t.Fatal(err)
	}
	sw.pump(t)
	good := sw.a.History(nil)[0].String()
	checkSecCases(t, sw, secCases(t, sw, secA, secOther, good))

	// A key store that binds a's id to another key is not believed.
	bad := &scuttlebutt.Keys{}
	bad.Add(secA.ID(), pub)
	v2 := model.New("", scuttlebutt.WithSecurity(secRSA(t, "test2", bad)))
	rec := secRecord(v2.Replica)
	s := v2.NewStream()
	utWrite(t, s, utPeerHeader, good)
	if unv, errs, _ := rec.snapshot(); len(unv) != 1 || !strings.Contains(errs[0].Error(), "another id") {
		t.Fatalf("rebound key: unverified %q %v, want the update rejected", unv, errs)
	}
}

// Vectors made by npm scuttlebutt's security.js (node, with the test1 key;
// see interop/sb-keys): JavaScript's signatures verify, and Go's are the
// same bytes (PKCS#1 v1.5 is deterministic), so Go signs exactly
// JSON.stringify([change, ts, source]).
func TestSecRSAVectors(t *testing.T) {
	const id = "lk5RPxZJ4InN3AxwVYiqIOHHpQs="
	vectors := []string{
		`[["k","h\u00e9llo\u20ac\ud83d\ude00\u2028<&>\u007f\u0001\"\\"],1700000000000.001,"lk5RPxZJ4InN3AxwVYiqIOHHpQs=","IXOxzAZEvqBPDd2DxOU2jgmqfeAV3z/6PCkDZdfVpMtrylg/9Of3HpaqL7K8/uIH8GoZhfwYAmlQQKNkrWhCMguEVn4WYgbw1TSkQ0WomfdfCb/dwPTmXOG6diZkNvyc"]`,
		`[["obj",{"1":3,"2":2,"b":1,"a":[0,1e+21,1e-7,null,true]}],1700000000005,"lk5RPxZJ4InN3AxwVYiqIOHHpQs=","cVWDkr1c95zeMM4z8TugPOipum8LjpmaU3GRegi7n1UE6jQSyX4/58TMsFlCIx5ShG5QQgg3RSCxUMr5iiuHfSseae/5IFjL8B2yjsliD6jc+7fQFxd93jJ8Ptkmb+Et"]`,
		`[["lone","\ud800x"],1700000000006,"lk5RPxZJ4InN3AxwVYiqIOHHpQs=","L6+JrxOILX2u71mlX6b4Lq01GSxJO0IrXPUz6W6qZtmsG4+Db9RYrpRN7ILuZEcqmgPsedrD3O2gmmUde6gsh08yPFIE0PHzcnVMTvvZbieqf71R+clX9wAkDq7Z+stE"]`,
	}
	if got := scuttlebutt.RSAID(secFile(t, "test1.pem")); got != id {
		t.Fatalf("RSAID(test1.pem) = %q, want %q", got, id)
	}
	if got := scuttlebutt.RSAID(nil); got != "2jmj7l5rSw0yVb/vlWAYkK/YBwk=" {
		t.Fatalf("RSAID(empty) = %q", got)
	}
	sec := secRSA(t, "test1", nil)
	verifier := secRSA(t, "test2", nil)
	for i, line := range vectors {
		// Decode the line as a stream does, into a replica that trusts test1.
		keys := &scuttlebutt.Keys{}
		keys.Add(id, secFile(t, "test1.pem"))
		v := model.New("", scuttlebutt.WithSecurity(secRSA(t, "test2", keys)))
		rec := secRecord(v.Replica)
		utWrite(t, v.NewStream(), utPeerHeader, line)
		unv, errs, upd := rec.snapshot()
		if len(upd) != 1 || len(unv) != 0 {
			t.Fatalf("vector %d: applied %q, rejected %q %v", i, upd, unv, errs)
		}
		u := v.History(nil)[0]
		sig, err := sec.Sign(scuttlebutt.Update{Change: u.Change, Timestamp: u.Timestamp, Source: u.Source})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sig, u.Extra[0]) {
			t.Fatalf("vector %d: Go signs %s, JavaScript signed %s", i, sig, u.Extra[0])
		}
		if err := verifier.Verify(t.Context(), u); !errors.Is(err, scuttlebutt.ErrUnknownKey) {
			t.Fatalf("vector %d: a verifier without test1's key says %v, want ErrUnknownKey", i, err)
		}
	}
}

// Verification runs without the replica's lock: a key store that takes
// long holds up only the stream whose update waits for it. The same update
// arriving on two streams at once is applied once.
func TestSecSlowKeyStore(t *testing.T) {
	secA := scuttlebutt.NewEd25519(secKey(1), nil)
	release := make(chan struct{})
	var lookups atomic.Int32
	store := scuttlebutt.KeyFunc(func(ctx context.Context, id string) ([]byte, error) {
		lookups.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if id != secA.ID() {
			return nil, scuttlebutt.ErrUnknownKey
		}
		return secKey(1).Public().(ed25519.PublicKey), nil
	})
	v := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(2), store)))
	rec := secRecord(v.Replica)
	line := signLine(t, secA, secA.ID(), `["k","slow"]`, 1700000000000)

	s1, s2 := v.NewStream(), v.NewStream()
	utWrite(t, s1, utPeerHeader)
	utWrite(t, s2, utPeerHeader)
	var wg sync.WaitGroup
	for _, s := range []*scuttlebutt.Stream{s1, s2} {
		wg.Go(func() { s.Write([]byte(line + "\n")) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for lookups.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if lookups.Load() != 2 {
		t.Fatalf("%d key lookups under way, want 2", lookups.Load())
	}
	// Both streams wait for the key store; the replica does not.
	done := make(chan error, 1)
	go func() { done <- v.Set("local", 1) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Set blocked while a key lookup was under way")
	}
	if _, ok := v.Get("k"); ok {
		t.Fatal("k applied before it was verified")
	}
	close(release)
	wg.Wait()
	unv, _, upd := rec.snapshot()
	if len(unv) != 0 || len(upd) != 2 { // local, then k once
		t.Fatalf("applied %q, rejected %q; want local and k once", upd, unv)
	}

	// A stream closed while its update waits for the key store stops
	// waiting, and the update is not applied.
	block := make(chan struct{})
	defer close(block)
	v2 := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(2), scuttlebutt.KeyFunc(
		func(ctx context.Context, id string) ([]byte, error) {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil, ctx.Err()
		}))))
	s := v2.NewStream()
	utWrite(t, s, utPeerHeader)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		s.Write([]byte(line + "\n"))
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	utDone(t, wrote, "Write to return after Close")
	if _, ok := v2.Get("k"); ok {
		t.Fatal("applied an update whose verification was cancelled")
	}
}

func TestSecNewPanicsOnOtherID(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New with an id other than the Security's did not panic")
		}
	}()
	model.New("X", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(1), nil)))
}

func TestSecLoadKeys(t *testing.T) {
	ed := scuttlebutt.NewEd25519(secKey(1), nil)
	rsaID := scuttlebutt.RSAID(secFile(t, "test1.pem"))
	file := filepath.Join(t.TempDir(), "keys.json")
	js, _ := json.Marshal(map[string]string{rsaID: string(secFile(t, "test1.pem")), ed.ID(): ed.ID()})
	if err := os.WriteFile(file, js, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := scuttlebutt.LoadKeys(file)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := keys.PublicKey(t.Context(), rsaID); err != nil || !bytes.Equal(k, secFile(t, "test1.pem")) {
		t.Fatalf("RSA key: %q, %v", k, err)
	}
	if k, err := keys.PublicKey(t.Context(), ed.ID()); err != nil || !bytes.Equal(k, secKey(1).Public().(ed25519.PublicKey)) {
		t.Fatalf("ed25519 key: %x, %v", k, err)
	}
	if _, err := keys.PublicKey(t.Context(), "nobody"); !errors.Is(err, scuttlebutt.ErrUnknownKey) {
		t.Fatalf("unknown id: %v, want ErrUnknownKey", err)
	}
	// The loaded store is what both Securities read.
	v := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(2), keys)))
	utWrite(t, v.NewStream(), utPeerHeader, signLine(t, ed, ed.ID(), `["k",1]`, 5))
	if got, _ := v.Get("k"); string(got) != "1" {
		t.Fatalf("k = %s, want the trusted source's update", got)
	}
}
