package links

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/message"
)

// charwiseCases are index keys with what makes charwise interesting:
// escapes, control characters, numbers of every size and sign, nesting.
var charwiseCases = []string{
	`["link","@a","mentions","%b",1,"%c"]`,
	`["a b","a","a!","a\"b","a?b","a?!","?@","??","",null]`,
	`["\u0000x\u0001y",true,false,null]`,
	`[0,1,-1,1.5,-1.5,123456789,1e-7,-1e-7,1.7e12,1796278772956.001,5e-324,1.7976931348623157e308,-1e21,0.1]`,
	`[["mentions","@bob"],["vote",-1],["contact",true,null],[],[[]],["a",["b",["c"]]]]`,
	`["é","日本","😀","~","\uffff"]`,
}

// TestCharwiseMatchesJS encodes keys with npm charwise and with ours, and
// decodes ours with npm charwise's decoder's rules.
func TestCharwiseMatchesJS(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, _ := json.Marshal(charwiseCases)
	script := `const cw = require('charwise'); const cases = JSON.parse(process.argv[1]);
process.stdout.write(JSON.stringify(cases.map(c => { const v = JSON.parse(c); const e = cw.encode(v); return [e, JSON.stringify(cw.decode(e))] })))`
	cmd := exec.CommandContext(ctx, "node", "-e", script, string(in))
	cmd.Dir = oracle.Dir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want [][2]string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, c := range charwiseCases {
		v, err := fromJSON(mustParse([]byte(c)))
		if err != nil {
			t.Fatal(err)
		}
		got := string(cwEncode(nil, v))
		if got != want[i][0] {
			t.Errorf("%s:\n charwise %q\n ours     %q", c, want[i][0], got)
			continue
		}
		items, err := cwDecodeItems([]byte(got[1:]))
		if err != nil {
			t.Errorf("%s: decoding %q: %v", c, got, err)
			continue
		}
		if dec := string(jsArr(items...).appendJSON(nil)); dec != canonical(want[i][1]) {
			t.Errorf("%s: decoded\n charwise %s\n ours     %s", c, want[i][1], dec)
		}
	}
}

func canonical(s string) string { return mustParse([]byte(s)).String() }

// TestCharwiseOrder: encoded numbers sort as the numbers do.
func TestCharwiseOrder(t *testing.T) {
	nums := []float64{math.Inf(-1), -1e300, -1e21, -5, -1.5, -1, -0.5, -1e-7, 0, 1e-7, 0.1, 1, 1.5, 2, 10, 1.7e12, 1.7e12 + 0.001, 1e21, 1e300, math.Inf(1)}
	for i := 1; i < len(nums); i++ {
		a, b := cwNumber(nil, nums[i-1]), cwNumber(nil, nums[i])
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("%v (%q) does not sort before %v (%q)", nums[i-1], a, nums[i], b)
		}
		// The keys as stored (numbers without their padding) too, also
		// when another item follows.
		for _, next := range []jsv{{kind: jsUndefined}, jsStr(""), jsNum(-1), jsNum(0), jsNum(5)} {
			a, b := cwKey(jsNum(nums[i-1]), next), cwKey(jsNum(nums[i]), next)
			if bytes.Compare(a, b) >= 0 {
				t.Errorf("stored: %q does not sort before %q", a, b)
			}
			a, b = cwKey(jsNum(nums[i-1]), jsNum(1e300)), cwKey(jsNum(nums[i]), jsNum(-1e300))
			if bytes.Compare(a, b) >= 0 {
				t.Errorf("stored: %q does not sort before %q", a, b)
			}
		}
	}
}

// FuzzCharwiseDecode: index keys read from disk decode or fail, never
// panic; what our encoder writes decodes back to the same key.
func FuzzCharwiseDecode(f *testing.F) {
	for _, c := range charwiseCases {
		v, _ := fromJSON(mustParse([]byte(c)))
		f.Add(cwEncode(nil, v)[1:])
	}
	f.Add([]byte("!!!!"))
	f.Add([]byte("KKKKKKKKKKKKJa!"))
	f.Add([]byte(`FE  0M0"DaN"F"D"J`))
	f.Fuzz(func(t *testing.T, key []byte) {
		items, err := cwDecodeItems(key)
		if err != nil {
			return
		}
		again, err := cwDecodeItems(cwKey(items...))
		if err != nil {
			t.Fatalf("%q decodes to %s, whose encoding does not decode: %v", key, jsArr(items...).appendJSON(nil), err)
		}
		_ = again
	})
}

// FuzzExtract: any JSON content gives links without a panic, and every
// link found is a link.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(`{"type":"post","mentions":[{"link":"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519","name":"x"}],"channel":"a b"}`))
	f.Add([]byte(`{"type":"x","value":{"content":{"type":"y","root":"%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"}}}`))
	f.Add([]byte(`{"type":"x","refs":{"0":"&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256","1":null},"a":[null,1,[]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		content, err := message.Parse(b)
		if err != nil {
			return
		}
		value := message.ObjectValue(message.Member{Key: "author", Value: message.StringValue("@x")}, message.Member{Key: "content", Value: content})
		for _, l := range dbLinks(value) {
			if !isLink(l.link) {
				t.Fatalf("%q is not a link", l.link)
			}
		}
		for _, r := range links2Records(value, 1) {
			cwKey(jsStr(r.source), r.rel, jsStr(r.dest), jsNum(r.ts))
		}
		for _, d := range backlinkDests(content) {
			if refType(d) == "" && !isChannel(d) {
				t.Fatalf("%q is neither an id nor a channel", d)
			}
		}
	})
}

func mustParse(b []byte) message.Value {
	v, err := message.Parse(b)
	if err != nil {
		panic(err)
	}
	return v
}

// TestRefTypeAsRegexps: refType answers as ssb-ref's regular expressions
// for ids with every byte changed, and ids cut and extended.
func TestRefTypeAsRegexps(t *testing.T) {
	res := map[string]*regexp.Regexp{
		"feed": regexp.MustCompile(`^@[a-zA-Z0-9/+]{42}[AEIMQUYcgkosw048]=\.(?:sha256|ed25519)$`),
		"msg":  regexp.MustCompile(`^%[a-zA-Z0-9/+]{42}[AEIMQUYcgkosw048]=\.sha256$`),
		"blob": regexp.MustCompile(`^&[a-zA-Z0-9/+]{42}[AEIMQUYcgkosw048]=\.sha256$`),
	}
	want := func(s string) string {
		for _, typ := range []string{"feed", "msg", "blob"} {
			if res[typ].MatchString(s) {
				return typ
			}
		}
		return ""
	}
	body := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123+/AQ="
	bases := []string{"@" + body + ".ed25519", "@" + body + ".sha256", "%" + body + ".sha256", "&" + body + ".sha256", "%" + body + ".ed25519"}
	var cases []string
	for _, b := range bases {
		for i := range len(b) + 1 {
			cases = append(cases, b[:i], b[:i]+"x"+b[i:])
			if i < len(b) {
				for c := range 256 {
					cases = append(cases, b[:i]+string(rune(c))+b[i+1:], b[:i]+string([]byte{byte(c)})+b[i+1:])
				}
			}
		}
	}
	for _, s := range cases {
		if got, w := refType(s), want(s); got != w {
			t.Fatalf("refType(%q) = %q, the regexps say %q", s, got, w)
		}
	}
}

// cwNumberSlow is charwise's number codec written as its JavaScript is:
// strings, padded with spaces; cwNumber must give the same bytes.
func cwNumberSlow(n float64) []byte {
	switch {
	case math.IsNaN(n):
		return []byte("DaN")
	case n == 0:
		return []byte("FE  0M0")
	case math.IsInf(n, 1):
		return []byte("FF")
	case math.IsInf(n, -1):
		return []byte("DD")
	}
	s := strconv.FormatFloat(n, 'e', -1, 64)
	mant, exps, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(exps)
	e := strconv.Itoa(exp + 500)
	for len(e) < 3 {
		e = " " + e
	}
	enc := "E" + e + "M" + mant
	if !strings.Contains(mant, ".") {
		enc += "."
	}
	enc += "00000000000000000000"
	if n > 0 {
		return []byte("F" + enc)
	}
	out := []byte{'D'}
	for _, c := range []byte(enc) {
		switch {
		case c >= '0' && c <= '9':
			out = append(out, '9'-c+'0')
		case c == '-':
		default:
			out = append(out, c)
		}
	}
	return out
}

func TestCwNumberAsSlow(t *testing.T) {
	nums := []float64{0, 1, -1, 0.5, -0.5, 1e21, -1e21, 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64,
		1.7e12, 1764748912345.123, -1764748912345.123, 123456789, 3, -3, 1e-7, -1e-7, math.NaN(), math.Inf(1), math.Inf(-1)}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		nums = append(nums, math.Float64frombits(r.Uint64()), float64(r.IntN(1<<20)), r.NormFloat64()*1e6)
	}
	for _, n := range nums {
		if got, want := cwNumber([]byte("x"), n), append([]byte("x"), cwNumberSlow(n)...); !bytes.Equal(got, want) {
			t.Fatalf("cwNumber(%v) = %q, want %q", n, got, want)
		}
	}
}
