package query

import (
	"bytes"
	"testing"
)

// rawCases are filters of a first stage and values of messages, for the
// raw filter's tests: each filter is matched against each value.
var (
	rawFilters = []string{
		`{"value":{"author":"@a","content":{"type":"post"}}}`,
		`{"value":{"content":{"type":"po\"st"}}}`,
		`{"value":{"content":{"n":{"$gt":3,"$lte":9}}}}`,
		`{"value":{"content":{"n":null,"x":true,"y":false}}}`,
		`{"value":{"content":{"length":3}}}`,
		`{"value":{"content":{}},"timestamp":{"$gt":5},"rts":{"$lt":100}}`,
		`{"value":{"sequence":2,"content":{"a":{"b":"c"}}},"key":"%k"}`,
		`{"value":{"content":{"n":1.5}}}`,
	}
	rawValues = []string{
		`{"author":"@a","sequence":2,"timestamp":50,"content":{"type":"post","n":4}}`,
		`{"author":"@a","sequence":2,"timestamp":500,"content":{"type":"po\"st","n":"4"}}`,
		`{"author":"@b","sequence":2,"timestamp":"x","content":"c2VjcmV0.box"}`,
		`{"author":"@a","content":{"n":null,"x":true,"y":false,"a":{"b":"c"}},"sequence":2}`,
		`{"content":{"length":3,"type":"p\u006fst","n":1.5e0}}`,
		`{"content":[1,2,3],"sequence":2.0}`,
		`{"content":{"n":10,"a":{"b":["c"]}},"author":"@a"}`,
		`{ "content" : { "type" : "post" , "n" : 9 } , "author" : "@a" }`,
		`{"content":{"type":"post"},"content":{"type":"vote"},"author":"@a"}`,
		`{"content":{"a":{"b":"c\\"}}}`,
	}
)

// TestRawFilter: where the raw filter is sure, it agrees with the query
// run on the decoded item.
func TestRawFilter(t *testing.T) {
	sure := 0
	for _, f := range rawFilters {
		for _, v := range rawValues {
			if checkRaw(t, []byte(`[{"$filter":`+f+`}]`), []byte(v)) {
				sure++
			}
		}
	}
	if sure < len(rawFilters)*len(rawValues)/2 {
		t.Errorf("sure of %d of %d", sure, len(rawFilters)*len(rawValues))
	}
}

// checkRaw compares the raw filter of a query with its run on one item
// (with rts and without), and reports whether the raw filter was sure.
func checkRaw(t *testing.T, query, raw []byte) bool {
	q, err := CompileJSON(query)
	if err != nil {
		return false
	}
	value, err := ParseJSON(raw)
	if err != nil {
		return false
	}
	sure := false
	for _, rts := range []bool{false, true} {
		rf := q.RawFilter(rts)
		if rf == nil {
			return false
		}
		item := Item("%k", value, 10, rts)
		var got []Value
		if err := q.NewRun(0).Push(item, func(v Value) error { got = append(got, v); return nil }); err != nil {
			return false
		}
		match, ok := rf.Match("%k", raw, 10)
		if !ok {
			continue
		}
		sure = true
		if match != (len(got) == 1) {
			t.Errorf("%s on %s (rts %v): raw %v, decoded %v", query, raw, rts, match, got)
		}
		if !match || !rf.Only() || !bytes.Equal(raw, value.AppendJSON(nil)) {
			continue
		}
		if b, ok := AppendRawItem(nil, "%k", raw, 10, rts); ok && !bytes.Equal(b, got[0].AppendJSON(nil)) {
			t.Errorf("%s on %s: item %s, decoded %s", query, raw, b, got[0].AppendJSON(nil))
		}
	}
	return sure
}

// FuzzRawFilter: the raw filter of any query agrees with the decoded run
// wherever it is sure, on any JSON.
func FuzzRawFilter(f *testing.F) {
	for _, q := range rawFilters {
		for _, v := range rawValues {
			f.Add([]byte(`[{"$filter":`+q+`}]`), []byte(v))
		}
	}
	f.Fuzz(func(t *testing.T, query, raw []byte) {
		checkRaw(t, query, raw)
	})
}
