package message

import (
	"testing"

	"github.com/scuttlego/scuttle/ssb/refs"
)

func TestDecodeRune(t *testing.T) {
	for _, c := range []struct {
		in   string
		r    rune
		size int
	}{
		{"a", 'a', 1}, {"é", 'é', 2}, {"\xe2\x82A", 0xfffd, 2}, {"\xf0\x9f\x98", 0xfffd, 3}, {"\xed\xa0\x80", 0xfffd, 1},
		{"\xe0\x80", 0xfffd, 1}, {"\xf4\x90", 0xfffd, 1}, {"\xc2", 0xfffd, 1}, {"\xff", 0xfffd, 1}, {"\ufffd", 0xfffd, 3},
	} {
		if r, n := decodeRune(c.in); r != c.r || n != c.size {
			t.Errorf("decodeRune(%q) = %U, %d; want %U, %d", c.in, r, n, c.r, c.size)
		}
	}
}

func TestLooseEquals(t *testing.T) {
	const id = "%J9EdQmDUR9+p8SN250e3ZHOCvrBvOql9ilHUdm0rn6s=.sha256"
	for in, want := range map[string]bool{
		`"` + id + `"`: true, `["` + id + `"]`: true, `[["` + id + `"]]`: true, `[null,"x"]`: false,
		`{}`: false, `1`: false, `null`: false, `true`: false, `["` + id + `",null]`: false, `[]`: false,
	} {
		v, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := refs.ParseMessage(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := looseEqualsMessageID(&v, ref); got != want {
			t.Errorf("%s == id: %v, want %v", in, got, want)
		}
	}
	v, _ := Parse([]byte(`[null,true,1e21,1e400,-1e400,"s",[1,[2]],{}]`))
	if got, want := string(appendJSString(nil, &v)), ",true,1e+21,Infinity,-Infinity,s,1,2,[object Object]"; got != want {
		t.Errorf("String(v) = %q, want %q", got, want)
	}
	if got := string(appendJSString(nil, &Value{kind: Number, num: nan()})); got != "NaN" {
		t.Errorf("String(NaN) = %q", got)
	}
}
