package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/scuttlego/scuttle/ssb/message"
)

// TestVerifyThenAppendMessagesIsAppend checks that Verify stores nothing,
// that its messages given to AppendMessages are stored as Append stores
// the same raws, and that it fails on the message Append fails on, with
// Append's error.
func TestVerifyThenAppendMessagesIsAppend(t *testing.T) {
	ctx := context.Background()
	a, b := newAuthor(t, "a"), newAuthor(t, "b")
	// More than minPerWorker messages per core, so that workers share the
	// batch.
	var ms []*message.Message
	for i := range 40 {
		ms = append(ms, a.post(t, float64(i)), b.post(t, float64(i)))
	}
	split, whole := openStore(t, WithClock(fakeClock(1e12, 1))), openStore(t, WithClock(fakeClock(1e12, 1)))
	verified, err := split.Verify(ctx, raws(ms)...)
	if err != nil {
		t.Fatal(err)
	}
	if split.Durable() != 0 {
		t.Fatalf("Verify stored %d messages", split.Durable())
	}
	for i, m := range verified {
		if m.Key != ms[i].Key || !bytes.Equal(m.Raw, ms[i].Raw) {
			t.Fatalf("message %d: Verify returned %s, want %s", i, m.Key, ms[i].Key)
		}
	}
	if err := split.AppendMessages(ctx, verified...); err != nil {
		t.Fatal(err)
	}
	if _, err := whole.Append(ctx, raws(ms)...); err != nil {
		t.Fatal(err)
	}
	got, want := collect(t)(split.Log(ctx, LogQuery{})), collect(t)(whole.Log(ctx, LogQuery{}))
	if len(got) != len(ms) || len(got) != len(want) {
		t.Fatalf("%d and %d items stored, want %d", len(got), len(want), len(ms))
	}
	for i := range got {
		if got[i].Key != want[i].Key || got[i].Seq != want[i].Seq || got[i].Timestamp != want[i].Timestamp || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Errorf("item %d: Verify+AppendMessages stored %+v, Append %+v", i, got[i], want[i])
		}
	}
	mustCheck(t, split)

	next := a.make(t, 100)
	tampered := bytes.Replace(next.Raw, []byte(`"post"`), []byte(`"pots"`), 1)
	bad := [][]byte{b.post(t, 100).Raw, tampered, b.post(t, 101).Raw}
	_, verr := split.Verify(ctx, bad...)
	_, aerr := whole.Append(ctx, bad...)
	var ae *AppendError
	if !errors.As(verr, &ae) || ae.Index != 1 || !errors.Is(verr, message.ErrSignature) {
		t.Fatalf("Verify: %v, want message 1 to fail with a bad signature", verr)
	}
	if aerr == nil || verr.Error() != aerr.Error() {
		t.Errorf("Verify: %v; Append: %v; want the same error", verr, aerr)
	}
	if split.Durable() != uint64(len(ms)) {
		t.Errorf("%d messages stored after the failed Verify, want %d", split.Durable(), len(ms))
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := split.Verify(cctx, raws(ms)...); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with an ended context: %v, want context.Canceled", err)
	}
}
