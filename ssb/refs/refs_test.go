package refs

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// From ssb.md §1.1 (a real feed id) and the ssb-keys weird.js vector.
const (
	feedID = "@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519"
	msgID  = "%lFluepOmDxEUcZWlLfz0rHU61xLQYxknAEd6z4un8P8=.sha256"
)

func TestRoundTrip(t *testing.T) {
	f, err := ParseFeed(feedID)
	if err != nil {
		t.Fatal(err)
	}
	if f.String() != feedID || len(feedID) != 53 {
		t.Errorf("feed round trip: %s", f)
	}
	m, err := ParseMessage(msgID)
	if err != nil {
		t.Fatal(err)
	}
	if m.String() != msgID {
		t.Errorf("message round trip: %s", m)
	}
	blobID := "&" + strings.TrimPrefix(msgID, "%")
	b, err := ParseBlob(blobID)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != blobID || b.Hash() != m.Hash() {
		t.Errorf("blob round trip: %s", b)
	}
}

func TestFromKeyAndHash(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFeed(pub)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseFeed(f.String())
	if err != nil || !back.PublicKey().Equal(pub) {
		t.Fatalf("ParseFeed(%s) = %v, %v", f, back, err)
	}
	if _, err := NewFeed(pub[:31]); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewFeed of 31 bytes: %v", err)
	}
	h := sha256.Sum256([]byte("hello"))
	if got := NewBlob(h).String(); got != "&LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=.sha256" {
		t.Errorf("blob of hello = %s", got)
	}
}

func TestRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519",               // no sigil
		"%FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519",              // wrong sigil
		"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.sha256",               // wrong suffix
		"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY.ed25519",               // no padding
		"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWZ=.ed25519",              // stray bits in the last character
		"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziW=.ed25519",               // too short
		"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/zi\nWY=.ed25519",            // whitespace
		"@FCX_tsDLpubCPKKfIrw4gc-SQkHcaD17s7GI6i_ziWY=.ed25519",              // URL alphabet
		"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519", // 42 bytes
	} {
		if _, err := ParseFeed(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseFeed(%q) = %v, want ErrInvalid", s, err)
		}
	}
	if _, err := ParseMessage(feedID); err == nil || !strings.Contains(err.Error(), "message id") {
		t.Errorf("ParseMessage(feed id) = %v, want an error naming a message id", err)
	}
}

func TestJSON(t *testing.T) {
	var v struct {
		Author Feed    `json:"author"`
		Prev   Message `json:"previous"`
	}
	in := `{"author":"` + feedID + `","previous":"` + msgID + `"}`
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil || string(out) != in {
		t.Fatalf("json round trip: %s, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"author":"@x.ed25519"}`), &v); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad author: %v", err)
	}
}

func FuzzParseFeed(f *testing.F) {
	f.Add(feedID)
	f.Add("@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWZ=.ed25519")
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseFeed(s)
		if err != nil {
			return
		}
		if ref.String() != s {
			t.Fatalf("accepted %q but formats as %q", s, ref.String())
		}
	})
}
