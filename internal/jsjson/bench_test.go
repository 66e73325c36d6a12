package jsjson_test

import (
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// benchLines are replication-stream elements as the JavaScript peers write
// them: canonical (ASCII, non-ASCII as \u escapes) or pretty-printed with
// raw UTF-8, which Canonical rewrites.
var (
	benchCanonical = []byte(`[["post/%J9EdQmDUR9+p8SN250e3ZHOCvrBvOql9ilHUdm0rn6s=.sha256",{"text":"Thanks for the write-up! It works on my pub \u2014 much faster now \u2615 \u00e9t\u00e9 \ud83d\ude00","n":[1,2.5,-3e-7],"ok":true}],1700000000000.001,"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519","sig"]`)
	benchPretty    = []byte("[\n  [\"post\", {\"text\": \"Thanks for the write-up! It works on my pub — much faster now ☕ été 😀\", \"n\": [1, 2.50, -3E-7], \"ok\": true}],\n  1700000000000.001, \"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519\", \"sig\"\n]")
	benchString    = "Thanks for the write-up! It works on my pub — much faster now ☕ \"été\"\n" + strings.Repeat("ascii ", 10)
)

func BenchmarkCanonical(b *testing.B) {
	b.SetBytes(int64(len(benchCanonical)))
	for b.Loop() {
		if _, err := jsjson.Canonical(benchCanonical); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalRewrite(b *testing.B) {
	b.SetBytes(int64(len(benchPretty)))
	for b.Loop() {
		if _, err := jsjson.Canonical(benchPretty); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitArray(b *testing.B) {
	b.SetBytes(int64(len(benchCanonical)))
	var elems [][]byte
	for b.Loop() {
		var err error
		if elems, err = jsjson.AppendSplitArray(elems[:0], benchCanonical); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	b.SetBytes(int64(len(benchString)))
	var buf []byte
	for b.Loop() {
		buf = jsjson.AppendString(buf[:0], benchString)
	}
}

func BenchmarkUnquote(b *testing.B) {
	lit := jsjson.AppendString(nil, benchString)
	b.SetBytes(int64(len(lit)))
	for b.Loop() {
		if _, err := jsjson.Unquote(lit); err != nil {
			b.Fatal(err)
		}
	}
}
