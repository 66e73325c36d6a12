package query

import (
	"testing"
	"time"
)

// FuzzParse reads any argument of query.read or query.explain: options,
// plan, compiled query and the plan's bounds must fail cleanly or succeed,
// quickly.
func FuzzParse(f *testing.F) {
	for _, q := range tableQueries {
		f.Add([]byte(`{"query":` + q + `}`))
	}
	for _, e := range explainCases {
		f.Add([]byte(e))
	}
	f.Add([]byte(`"[{\"$filter\":{}}]"`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		start := time.Now()
		arg, err := ParseJSON(b)
		if err != nil {
			return
		}
		o, err := ParseOptions(arg)
		if err != nil {
			return
		}
		if p, err := Explain(o); err == nil {
			p.JSON()
			if p.Check() == nil {
				p.Contains(objValue(nil))
			}
		}
		Compile(o.Query)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%d bytes took %v", len(b), d)
		}
	})
}

// FuzzEval runs a query over items built from fuzzed JSON: no panics, and
// every result prints as JSON.
func FuzzEval(f *testing.F) {
	items := testItems()
	for i, q := range tableQueries {
		f.Add([]byte(q), []byte(items[i%len(items)]))
	}
	f.Add([]byte(`[{"$reduce":{"g":"x","c":{"$collect":true}}}]`), []byte(`{"x":[1,{"a":null}]}`))
	f.Add([]byte(`[{"$map":{"a":{"$prefix":{"length":3}}}}]`), []byte(`"abcdef"`))
	f.Fuzz(func(t *testing.T, query, item []byte) {
		q, err := CompileJSON(query)
		if err != nil {
			return
		}
		v, err := ParseJSON(item)
		if err != nil {
			return
		}
		r := q.NewRun(1 << 20)
		emit := func(out Value) error {
			out.AppendJSON(nil)
			return nil
		}
		for range 3 {
			if r.Push(v, emit) != nil {
				return
			}
		}
		r.End(emit)
	})
}
