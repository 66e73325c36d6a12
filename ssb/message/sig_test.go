package message

import (
	"testing"

	"github.com/scuttlego/scuttle/ssb/refs"
)

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
