package query

import (
	"errors"
	"strings"
	"testing"
)

// TestBudget: a $reduce or $sort that holds more than its budget fails
// with ErrBudget instead of growing.
func TestBudget(t *testing.T) {
	item, err := ParseJSON([]byte(`{"key":"%a","value":{"content":{"text":"` + strings.Repeat("x", 1000) + `"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`[{"$reduce":{"$collect":true}}]`,
		`[{"$reduce":{"k":"key","all":{"$collect":["value","content","text"]}}}]`,
		`[{"$sort":[["key"]]}]`,
	} {
		c, err := CompileJSON([]byte(q))
		if err != nil {
			t.Fatal(err)
		}
		r := c.NewRun(64 << 10)
		var got error
		for i := 0; i < 1000 && got == nil; i++ {
			got = r.Push(item, func(Value) error { return nil })
		}
		if !errors.Is(got, ErrBudget) {
			t.Errorf("%s: %v, want ErrBudget", q, got)
		}
	}
}

// TestBounds: queries past the size bounds fail before they run.
func TestBounds(t *testing.T) {
	for _, q := range []string{
		strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2),
		`[{"$filter":{"a":{"$in":[` + strings.Repeat(`1,`, MaxNodes) + `1]}}}]`,
		`[` + strings.Repeat(`{"$filter":{}},`, MaxStages) + `{"$filter":{}}]`,
		`"` + strings.Repeat("x", MaxQuerySize) + `"`,
	} {
		if _, err := CompileJSON([]byte(q)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%.40s...: %v, want ErrTooLarge", q, err)
		}
	}
}

// TestJSComparisons pins JavaScript's coercions that map-filter-reduce's
// operators inherit (checked in node).
func TestJSComparisons(t *testing.T) {
	v := func(s string) Value {
		if s == "undefined" {
			return undefined
		}
		x, err := ParseJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, c := range []struct {
		a, b string
		lt   bool
	}{
		{`"10"`, `9`, false}, {`"10"`, `"9"`, true}, {`null`, `1`, true}, {`"abc"`, `"abd"`, true},
		{`[2]`, `3`, true}, {`[1,2]`, `"1,3"`, true}, {`{}`, `"[object Pbject]"`, true}, {`undefined`, `1`, false},
		{`"\uffff"`, `"😀"`, false}, {`true`, `2`, true}, {`" 12 "`, `13`, true}, {`"0x10"`, `17`, true}, {`""`, `1`, true},
	} {
		if got := lessThan(v(c.a), v(c.b)); got != c.lt {
			t.Errorf("%s < %s = %v, want %v", c.a, c.b, got, c.lt)
		}
	}
}
