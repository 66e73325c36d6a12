package query

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
)

// testItems are message items with the shapes a query meets: several
// authors, types, channels and roots, missing and odd fields.
func testItems() []string {
	authors := []string{"@AAAA.ed25519", "@BBBB.ed25519", "@aaaa.ed25519"}
	types := []string{`"post"`, `"vote"`, `"contact"`, `"post"`, `"about"`, `"pub"`, `5`, `null`, `"po"`, `"posts"`, `"Post"`, `"é"`}
	channels := []string{`"ssb"`, `"go"`, `null`, `"ssb-dev"`, `""`}
	var items []string
	seq := map[string]int{}
	for i := range 40 {
		a := authors[i%len(authors)]
		seq[a]++
		var content string
		switch {
		case i%13 == 7:
			content = `"c2VjcmV0.box"` // encrypted: a string
		case i%11 == 5:
			content = `{"text":"no type","n":"12"}`
		default:
			content = fmt.Sprintf(`{"type":%s,"text":"message %d ☃","i":%d`, types[i%len(types)], i, i)
			if i%3 == 0 {
				content += fmt.Sprintf(`,"channel":%s`, channels[i%len(channels)])
			}
			if i%4 == 1 {
				content += fmt.Sprintf(`,"root":"%%r%d.sha256","tags":["a","b%d"]`, i%3, i%2)
			}
			if i%5 == 2 {
				content += `,"vote":{"value":1,"expression":"like"},"list":[1,"2",null,[3]]`
			}
			content += "}"
		}
		claimed := 1000 + (i*37)%50
		if i%9 == 4 {
			claimed = 5000 + i
		}
		items = append(items, fmt.Sprintf(`{"key":"%%m%02d.sha256","value":{"previous":null,"author":"%s","sequence":%d,"timestamp":%d,"hash":"sha256","content":%s,"signature":"x"},"timestamp":%d.5,"rts":%d}`,
			i, a, seq[a], claimed, content, 2000+i*10, min(claimed, 2000+i*10)))
	}
	return items
}

// tableQueries are map-filter-reduce queries, good and bad.
var tableQueries = []string{
	`[{"$filter":{"value":{"author":"@AAAA.ed25519"}}}]`,
	`[{"$filter":{"value":{"content":{"type":"post"}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$prefix":"po"}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$in":["vote","about"]}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$in":"postvote"}}}}}]`,
	`[{"$filter":{"value":{"sequence":{"$gt":3,"$lte":7}}}}]`,
	`[{"$filter":{"timestamp":{"$gte":2100,"$lt":2200}}}]`,
	`[{"$filter":{"value":{"timestamp":{"$lt":"1020"}}}}]`,
	`[{"$filter":{"value":{"content":{"channel":null}}}}]`,
	`[{"$filter":{"value":{"content":{"channel":{"$is":"undefined"}}}}}]`,
	`[{"$filter":{"value":{"content":{"channel":{"$ne":"ssb"}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$eq":"vote"}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$not":true}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$is":"number"}}}}}]`,
	`[{"$filter":{"value":{"content":{"tags":["a","b1"]}}}}]`,
	`[{"$filter":{"value":{"content":{"tags":{"$prefix":["a"]}}}}}]`,
	`[{"$filter":{"value":{"content":{"list":{"$prefix":[1,"2"]}}}}}]`,
	`[{"$filter":{"value":{"content":{"n":{"$gt":5}}}}}]`,
	`[{"$filter":{"value":{"content":{"text":{"$prefix":"message 1"}}}}}]`,
	`[{"$filter":{"value":{"content":{"i":{"$mod":3}}}}}]`,
	`[{"$filter":{"value":{"content":{"i":{"$int":true,"$gt":30}}}}}]`,
	`[{"$filter":{"value":{"content":"c2VjcmV0.box"}}}]`,
	`[{"$filter":{"value":{"content":{"$is":"string"}}}}]`,
	`[{"$filter":{"value":{"content":{"text":{"$type":true}}}}}]`,
	`[{"$filter":{"value":{"content":{"vote":{"value":1}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$prefix":5}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$get":"length"}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$gt":"p","$lt":"q"}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":{"$gte":"post"}}}}}]`,
	`[{"$filter":{"value":{"content":{"list":{"$lt":2}}}}}]`,
	`[{"$map":["value","author"]}]`,
	`[{"$map":{"author":["value","author"],"type":["value","content","type"],"seq":["value","sequence"]}}]`,
	`[{"$map":{"key":true,"timestamp":true}}]`,
	`[{"$map":{"a":{"b":["value","content","text"]}}}]`,
	`[{"$map":"key"}]`,
	`[{"$map":true}]`,
	`[{"$map":["value","content","text","length"]}]`,
	`[{"$map":["value","content","list",-1]}]`,
	`[{"$map":["value","content","text",0]}]`,
	`[{"$map":["value","content","i",{"$mod":4}]}]`,
	`[{"$map":["value","content","type",{"$type":true}]}]`,
	`[{"$map":["value","content",{"$get":["vote","expression"]}]}]`,
	`[{"$map":{"t":["value","content","type"],"x":{"$filter":{"value":{"sequence":{"$gt":5}}}}}}]`,
	`[{"$filter":{"value":{"content":{"type":"post"}}}},{"$map":["value","sequence"]}]`,
	`[{"$reduce":{"$count":true}}]`,
	`[{"$filter":{"value":{"content":{"type":"nothing"}}}},{"$reduce":{"$count":true}}]`,
	`[{"$reduce":{"author":["value","author"],"count":{"$count":true}}}]`,
	`[{"$reduce":{"type":["value","content","type"],"count":{"$count":true},"max":{"$max":["value","sequence"]},"min":{"$min":["value","timestamp"]}}}]`,
	`[{"$reduce":{"author":["value","author"],"type":["value","content","type"],"keys":{"$collect":"key"}}}]`,
	`[{"$reduce":{"$sum":["value","content","i"]}}]`,
	`[{"$reduce":{"$product":["value","content","n"]}}]`,
	`[{"$reduce":{"$max":["value","content","i"]}}]`,
	`[{"$reduce":{"$min":["value","content","i"]}}]`,
	`[{"$reduce":{"$collect":["value","content","channel"]}}]`,
	`[{"$reduce":{"total":{"$count":true},"sum":{"$sum":"timestamp"}}}]`,
	`[{"$reduce":{"a":{"author":["value","author"]},"n":{"$count":true}}}]`,
	`[{"$reduce":{"ch":["value","content","channel"],"n":{"$count":true}}},{"$filter":{"n":{"$gt":1}}}]`,
	`[{"$map":["value","author"]},{"$reduce":{"$collect":true}}]`,
	`[{"$sort":[["value","content","i"]]}]`,
	`[{"$map":{"s":["value","sequence"],"a":["value","author"]}},{"$sort":[["s"],{"$reverse":["a"]}]}]`,
	`[{"$map":["value","sequence"]},{"$sort":[]}]`,
	`[{"$filter":{"value":{"author":"@BBBB.ed25519"}}},null,{"$map":["value","sequence"]}]`,
	`[{"$filter":{"value":{"content":{"type":{"$first":true}}}}}]`,
	`[{"$reduce":{"$first":true}}]`,
	`[{"$reduce":{"$last":["value","sequence"]}}]`,
	`[{"$foo":{}}]`,
	`[{"filter":{}}]`,
	`[{"$filter":{"value":{"$foo":1}}}]`,
	`[{"$filter":{"value":{"author":{"$in":5}}}}]`,
	`[{"$map":["value",null]}]`,
	`[{"$map":1.5}]`,
	`[{"$filter":{}}]`,
	`[{"$map":{}}]`,
	`[{"$filter":"x"}]`,
	`[{"$filter":{"value":{"content":{"type":{"$prefix":null}}}}}]`,
	`[{"$map":["value","content","type",-2]}]`,
	`[{"$filter":{"key":{"$gt":"%m2","$lt":"%m3"}}},{"$map":"key"}]`,
	`[{"$filter":{"value":{"sequence":{"$in":[1,2,3]}}}},{"$reduce":{"s":["value","sequence"],"authors":{"$collect":["value","author"]}}}]`,
}

type jsAnswer struct {
	Out   any     `json:"out"`
	Error *string `json:"error"`
}

// runJS runs the cases through mfr.js.
func runJS(t *testing.T, items []string, cases []map[string]json.RawMessage) []jsAnswer {
	t.Helper()
	oracle.Require(t)
	raws := make([]json.RawMessage, len(items))
	for i, it := range items {
		raws[i] = json.RawMessage(it)
	}
	in, err := json.Marshal(map[string]any{"items": raws, "cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("testdata/mfr.js")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, file)
	cmd.Dir = oracle.Dir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mfr.js: %v", err)
	}
	var answers []jsAnswer
	if err := json.Unmarshal(out, &answers); err != nil {
		t.Fatalf("mfr.js output: %v", err)
	}
	if len(answers) != len(cases) {
		t.Fatalf("mfr.js gave %d answers for %d cases", len(answers), len(cases))
	}
	return answers
}

// runGo runs a query through the compiled pipeline.
func runGo(items []string, query string) (any, error) {
	q, err := CompileJSON([]byte(query))
	if err != nil {
		return nil, err
	}
	var out []byte
	out = append(out, '[')
	emit := func(v Value) error {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = v.AppendJSON(out)
		return nil
	}
	r := q.NewRun(0)
	for _, it := range items {
		v, err := ParseJSON([]byte(it))
		if err != nil {
			return nil, err
		}
		if err := r.Push(v, emit); err != nil {
			return nil, err
		}
	}
	if err := r.End(emit); err != nil {
		return nil, err
	}
	out = append(out, ']')
	var res any
	err = json.Unmarshal(out, &res)
	return res, err
}

func compareQueries(t *testing.T, items []string, queries []string) {
	t.Helper()
	cases := make([]map[string]json.RawMessage, len(queries))
	for i, q := range queries {
		cases[i] = map[string]json.RawMessage{"query": json.RawMessage(q)}
	}
	answers := runJS(t, items, cases)
	for i, q := range queries {
		got, err := runGo(items, q)
		js := answers[i]
		switch {
		case js.Error != nil && err == nil:
			t.Errorf("%s: JavaScript fails (%s), Go gives %v", q, *js.Error, got)
		case js.Error == nil && err != nil:
			t.Errorf("%s: Go fails (%v), JavaScript gives %v", q, err, js.Out)
		case js.Error != nil:
			if !strings.Contains(err.Error(), *js.Error) && !strings.Contains(*js.Error, "TypeError") && !strings.Contains(*js.Error, "Cannot") && !strings.Contains(*js.Error, "is not") {
				t.Errorf("%s: error %q, JavaScript's %q", q, err, *js.Error)
			}
		case !reflect.DeepEqual(got, js.Out):
			gb, _ := json.Marshal(got)
			jb, _ := json.Marshal(js.Out)
			t.Errorf("%s:\n go %s\n js %s", q, gb, jb)
		}
	}
}

func TestQueriesLikeMapFilterReduce(t *testing.T) {
	compareQueries(t, testItems(), tableQueries)
}

// TestRandomQueriesLikeMapFilterReduce runs random queries built from the
// operators and the items' fields through both.
func TestRandomQueriesLikeMapFilterReduce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, uint64(len(tableQueries))))
	queries := make([]string, 400)
	for i := range queries {
		queries[i] = randomQuery(r)
	}
	compareQueries(t, testItems(), queries)
}

var (
	randPaths = []string{`["value","author"]`, `["value","sequence"]`, `["value","content","type"]`, `["value","content","channel"]`,
		`["value","content","i"]`, `["value","content","text"]`, `["value","content","tags"]`, `["value","content","list"]`, `"timestamp"`, `"key"`,
		`["value","content","n"]`, `["value","timestamp"]`, `["value","content","vote","value"]`, `"rts"`, `["value","content"]`}
	randLiterals = []string{`"post"`, `"vote"`, `"po"`, `"@AAAA.ed25519"`, `3`, `7`, `2150.5`, `"12"`, `null`, `true`, `false`, `""`, `"ssb"`,
		`"message 1"`, `[1,"2"]`, `["a"]`, `1020`, `"1030"`, `0`, `-1`, `"é"`, `{}`}
	randOps = []string{"$lt", "$gt", "$lte", "$gte", "$eq", "$ne", "$prefix", "$in", "$is", "$not", "$truthy", "$int", "$mod", "$type"}
)

func randomFilterValue(r *rand.Rand) string {
	switch r.IntN(4) {
	case 0:
		return randLiterals[r.IntN(len(randLiterals))]
	case 1:
		op := randOps[r.IntN(len(randOps))]
		arg := randLiterals[r.IntN(len(randLiterals))]
		switch op {
		case "$in":
			arg = "[" + arg + "," + randLiterals[r.IntN(len(randLiterals))] + "]"
		case "$is":
			arg = []string{`"string"`, `"number"`, `"undefined"`, `"object"`, `"boolean"`}[r.IntN(5)]
		}
		s := `{"` + op + `":` + arg
		if r.IntN(3) == 0 {
			s += `,"` + randOps[r.IntN(4)] + `":` + randLiterals[r.IntN(len(randLiterals))]
		}
		return s + "}"
	}
	return randLiterals[r.IntN(len(randLiterals))]
}

func nestAt(path, leaf string) string {
	var keys []string
	if err := json.Unmarshal([]byte(path), &keys); err != nil {
		var k string
		json.Unmarshal([]byte(path), &k)
		keys = []string{k}
	}
	s := leaf
	for i := len(keys) - 1; i >= 0; i-- {
		s = `{"` + keys[i] + `":` + s + `}`
	}
	return s
}

func randomQuery(r *rand.Rand) string {
	var stages []string
	if r.IntN(4) != 0 {
		stages = append(stages, `{"$filter":`+nestAt(randPaths[r.IntN(len(randPaths))], randomFilterValue(r))+`}`)
	}
	if r.IntN(2) == 0 {
		switch r.IntN(3) {
		case 0:
			stages = append(stages, `{"$map":`+randPaths[r.IntN(len(randPaths))]+`}`)
		case 1:
			stages = append(stages, `{"$map":{"a":`+randPaths[r.IntN(len(randPaths))]+`,"b":`+randPaths[r.IntN(len(randPaths))]+`}}`)
		default:
			stages = append(stages, `{"$map":[`+randPaths[r.IntN(3)]+`,{"`+randOps[r.IntN(len(randOps))]+`":`+randLiterals[r.IntN(len(randLiterals))]+`}]}`)
		}
	}
	if r.IntN(3) == 0 && len(stages) > 0 && !strings.HasPrefix(stages[len(stages)-1], `{"$map"`) {
		red := []string{`{"$count":true}`, `{"$sum":` + randPaths[r.IntN(len(randPaths))] + `}`, `{"$max":` + randPaths[r.IntN(len(randPaths))] + `}`,
			`{"$min":` + randPaths[r.IntN(len(randPaths))] + `}`, `{"$collect":` + randPaths[r.IntN(len(randPaths))] + `}`}[r.IntN(5)]
		if r.IntN(2) == 0 {
			red = `{"g":` + randPaths[r.IntN(9)] + `,"r":` + red + `}`
		}
		stages = append(stages, `{"$reduce":`+red+`}`)
	}
	if len(stages) == 0 {
		stages = append(stages, `{"$filter":{}}`)
	}
	return "[" + strings.Join(stages, ",") + "]"
}

// explainCases are query.explain's arguments: strings, objects with a
// query or a JSON string of one, sorts, and the options.
var explainCases = []string{
	`{"query":[{"$filter":{"value":{"author":"@AAAA.ed25519"}}}]}`,
	`{"query":[{"$filter":{"value":{"author":"@AAAA.ed25519","sequence":{"$gt":3}}}}],"reverse":true}`,
	`{"query":[{"$filter":{"value":{"author":"@AAAA.ed25519","content":{"type":"post"}}}}],"live":true}`,
	`{"query":[{"$filter":{"value":{"author":"@AAAA.ed25519","content":{"type":"post"},"timestamp":{"$gt":5}}}}],"old":false}`,
	`{"query":[{"$filter":{"value":{"content":{"type":"post"}},"timestamp":{"$gte":10,"$lt":20}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":{"$prefix":"po"}}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":{"$prefix":["a"]}}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"channel":"ssb"}}}}],"sync":true}`,
	`{"query":[{"$filter":{"value":{"content":{"channel":null}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"root":"%r1.sha256"}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":{"$is":"string"}}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":{"$eq":"post"}}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":{"$in":["post"]}}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":["post"]}}}}]}`,
	`{"query":[{"$filter":{"timestamp":{"$lte":5}}}]}`,
	`{"query":[{"$filter":{"rts":{"$gt":5}}}]}`,
	`{"query":[{"$filter":{"value":{"sequence":5}}}]}`,
	`{"query":[{"$map":true}]}`,
	`{"query":[{"$filter":{"value":{"author":"x"}}},{"$sort":[["value","author"],["value","sequence"]]}]}`,
	`{"query":[{"$filter":{"value":{"author":"x"}}},{"$sort":["timestamp"]}]}`,
	`{"query":[{"$filter":{"value":{"author":"x"}}},{"$sort":[["nothing"]]}]}`,
	`{"query":"[{\"$filter\":{\"value\":{\"author\":\"@B\"}}}]"}`,
	`"[{\"$filter\":{\"value\":{\"content\":{\"type\":\"vote\"}}}}]"`,
	`"not json"`,
	`{"query":"{bad"}`,
	`{"query":[]}`,
	`{"query":[null]}`,
	`{"query":[{"$filter":null}]}`,
	`{"query":[{"$filter":{"value":null}}]}`,
	`{"query":[{"$filter":{"value":{"content":null}}}]}`,
	`{"query":[{"$filter":{"value":"x"}}]}`,
	`{"query":{"value":{"author":"@AAAA.ed25519"}}}`,
	`{"query":5}`,
	`{}`,
	`null`,
	`{"query":[{"$filter":{"value":{"author":{"$gt":"@B"},"sequence":{"$lt":4}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":{"$lt":"@B"}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":{"$prefix":7}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":{"$is":"null"}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":{"$foo":1}}}}]}`,
}

func explainGo(arg string) (any, error) {
	v, err := ParseJSON([]byte(arg))
	if err != nil {
		return nil, err
	}
	o, err := ParseOptions(v)
	if err != nil {
		return nil, err
	}
	p, err := Explain(o)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(p.JSON().AppendCompact(nil), &out)
	return out, err
}

func TestExplainLikeFlumeviewQuery(t *testing.T) {
	cases := make([]map[string]json.RawMessage, len(explainCases))
	for i, c := range explainCases {
		cases[i] = map[string]json.RawMessage{"explain": json.RawMessage(c)}
	}
	answers := runJS(t, nil, cases)
	for i, c := range explainCases {
		got, err := explainGo(c)
		js := answers[i]
		switch {
		case (js.Error != nil) != (err != nil):
			t.Errorf("%s: Go %v (%v), JavaScript %v (%v)", c, got, err, js.Out, js.Error)
		case err == nil && !reflect.DeepEqual(got, js.Out):
			gb, _ := json.Marshal(got)
			jb, _ := json.Marshal(js.Out)
			t.Errorf("%s:\n go %s\n js %s", c, gb, jb)
		}
	}
}

func TestCharwiseLikeJavaScript(t *testing.T) {
	arrays := []string{`[]`, `["typ","post",1500.5]`, `["clk","@a.ed25519",1]`, `[null,true,false]`, `[0,-0,1,-1,0.5,-0.5,1e21,-1e21,1e-7,-1e-7,123456789.125,-5e-324,1.7976931348623157e308]`,
		`["a!b","c\"d","e?f","g\u0000h","i\u0001j"]`, `[["a",["b"]],[],"x"]`, `["ünïcode ☃ 😀"]`, `[3,30,300,-3,-30,-300,2.5,25]`}
	cases := make([]map[string]json.RawMessage, len(arrays))
	for i, a := range arrays {
		cases[i] = map[string]json.RawMessage{"charwise": json.RawMessage(a)}
	}
	answers := runJS(t, nil, cases)
	for i, a := range arrays {
		v, err := ParseJSON([]byte(a))
		if err != nil {
			t.Fatal(err)
		}
		got, err := charwiseArray(nil, v.arr)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if js, _ := answers[i].Out.(string); string(got) != js {
			t.Errorf("%s:\n go %q\n js %q", a, got, js)
		}
	}
	if _, err := charwiseArray(nil, []Value{objValue(nil)}); err == nil {
		t.Error("an object was encoded; charwise refuses objects")
	}
}
