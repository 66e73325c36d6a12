package query

import (
	"fmt"
	"slices"
)

// A Query is a compiled map-filter-reduce query (npm map-filter-reduce@3,
// as flumeview-query@8 and ssb-query@2 run it): a pipeline of stages.
type Query struct {
	stages []stage
	src    Value // the query as given
}

type stageKind uint8

const (
	stageFilter stageKind = iota
	stageMap
	stageReduce
	stageSort
)

type stage struct {
	kind  stageKind
	f     fn
	paths []sortPath // stageSort
}

// Compile reads a query as ssb-query takes it: an array of stages. A
// value that is not an array gives a query that filters nothing (Explain
// plans from it), as flumeview-query does with it.
func Compile(q Value) (*Query, error) {
	if err := checkSize(q); err != nil {
		return nil, err
	}
	if _, _, err := planInput(q); err != nil {
		return nil, err
	}
	out := &Query{src: q}
	if q.kind != Array {
		return out, nil
	}
	for _, s := range q.arr {
		if !s.truthy() {
			continue // map-filter-reduce drops falsy stages
		}
		st, err := compileStage(s)
		if err != nil {
			return nil, err
		}
		out.stages = append(out.stages, st)
	}
	return out, nil
}

// planInput returns what flumeview-query plans from: the first stage's
// $filter (or the query itself when it is not an array), and the last
// stage's $sort.
func planInput(q Value) (filter, sort Value, err error) {
	filter = objValue(nil)
	if q.kind != Array {
		if q.truthy() {
			filter = q
		}
		return filter, undefined, nil
	}
	if len(q.arr) == 0 {
		return filter, undefined, fmt.Errorf("%w: TypeError: Cannot read properties of undefined (reading '$filter')", ErrQuery)
	}
	if q.arr[0].nullish() || q.arr[len(q.arr)-1].nullish() {
		return filter, undefined, fmt.Errorf("%w: TypeError: Cannot read properties of null (the first and last stages must not be null)", ErrQuery)
	}
	if f := q.arr[0].get("$filter"); f.truthy() {
		filter = f
	}
	return filter, q.arr[len(q.arr)-1].get("$sort"), nil
}

// CompileJSON compiles a query written as JSON.
func CompileJSON(b []byte) (*Query, error) {
	if len(b) > MaxQuerySize {
		return nil, fmt.Errorf("%w: %d bytes of JSON, more than %d", ErrTooLarge, len(b), MaxQuerySize)
	}
	v, err := ParseJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return Compile(v)
}

func checkSize(q Value) error {
	nodes := 0
	var walk func(v Value, depth int) error
	walk = func(v Value, depth int) error {
		nodes++
		if nodes > MaxNodes {
			return fmt.Errorf("%w: more than %d values", ErrTooLarge, MaxNodes)
		}
		if depth > MaxDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrTooLarge, MaxDepth)
		}
		for _, e := range v.arr {
			if err := walk(e, depth+1); err != nil {
				return err
			}
		}
		for _, m := range v.obj {
			if err := walk(m.val, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(q, 0); err != nil {
		return err
	}
	if q.kind == Array && len(q.arr) > MaxStages {
		return fmt.Errorf("%w: more than %d stages", ErrTooLarge, MaxStages)
	}
	return nil
}

// compileStage dispatches on the stage's first key, as map-filter-reduce's
// get does, then compiles the whole stage object as a rule (so that
// {$filter: x} is special.filter(x)).
func compileStage(s Value) (stage, error) {
	var first string
	switch {
	case s.kind == Object && len(s.obj) > 0:
		first = s.obj[0].key
	case s.kind == Array && len(s.arr) > 0, s.kind == String && s.str != "":
		first = "0"
	default:
		return stage{}, fmt.Errorf("%w: TypeError: a stage must be an object like {\"$filter\": ...}, not %s", ErrQuery, s.String())
	}
	var kind stageKind
	switch first {
	case "$filter":
		kind = stageFilter
	case "$map":
		kind = stageMap
	case "$reduce":
		kind = stageReduce
	case "$sort":
		return stage{kind: stageSort, paths: sortPaths(s.get("$sort"))}, nil
	default:
		return stage{}, fmt.Errorf("%w: unknown function:%s", ErrQuery, first)
	}
	f, err := makeRule(s)
	return stage{kind: kind, f: f}, err
}

// A Run is one pass of messages through a query. Filters and maps stream;
// $reduce and $sort hold what they get (within Budget bytes) and give it
// when End is called.
type Run struct {
	q    *Query
	env  env
	acc  []Value   // per stage: the reduce's accumulator
	buf  [][]Value // per stage: what $sort holds
	done bool
}

// DefaultBudget is the most bytes a run's $reduce and $sort stages hold.
const DefaultBudget = 32 << 20

// NewRun starts a run whose $reduce and $sort stages hold at most budget
// bytes (DefaultBudget when budget <= 0).
func (q *Query) NewRun(budget int) *Run {
	if budget <= 0 {
		budget = DefaultBudget
	}
	return &Run{q: q, env: env{maxBytes: budget}, acc: make([]Value, len(q.stages)), buf: make([][]Value, len(q.stages))}
}

// Buffers reports whether the query has a $reduce or $sort stage, which
// gives nothing until End.
func (q *Query) Buffers() bool {
	return slices.ContainsFunc(q.stages, func(s stage) bool { return s.kind == stageReduce || s.kind == stageSort })
}

// Push runs one message (its {key, value, timestamp} item) through the
// query; emit gets what comes out of the last stage.
func (r *Run) Push(item Value, emit func(Value) error) error {
	return r.push(0, item, emit)
}

func (r *Run) push(i int, v Value, emit func(Value) error) error {
	for ; i < len(r.q.stages); i++ {
		s := &r.q.stages[i]
		switch s.kind {
		case stageFilter:
			ok, err := s.f.call1(&r.env, v)
			if err != nil || !ok.truthy() {
				return err
			}
		case stageMap:
			var err error
			if v, err = s.f.call1(&r.env, v); err != nil || !v.truthy() {
				return err
			}
		case stageReduce:
			acc := r.acc[i]
			if acc.kind == Undefined {
				acc = Value{kind: Null} // pull.reduce(fn, null, cb)
			}
			var err error
			r.acc[i], err = s.f.f(&r.env, acc, v)
			return err
		case stageSort:
			if err := r.env.charge(sizeOf(v)); err != nil {
				return err
			}
			r.buf[i] = append(r.buf[i], v)
			return nil
		}
	}
	return emit(v)
}

// End gives what the $reduce and $sort stages hold to the stages after
// them, in order. A reduce of no messages gives nothing.
func (r *Run) End(emit func(Value) error) error {
	if r.done {
		return nil
	}
	r.done = true
	for i := range r.q.stages {
		var out []Value
		switch s := &r.q.stages[i]; s.kind {
		case stageReduce:
			out = flatten(r.acc[i])
			r.acc[i] = undefined
		case stageSort:
			var err error
			out, err = sortValues(r.buf[i], s.paths)
			r.buf[i] = nil
			if err != nil {
				return err
			}
		default:
			continue
		}
		for _, v := range out {
			if err := r.push(i+1, v, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// flatten is pull-stream's flatten of a reduce's result: an array or an
// object gives its elements or values; null and undefined give nothing.
func flatten(v Value) []Value {
	switch v.kind {
	case Undefined, Null:
		return nil
	case Array:
		return v.arr
	case Object:
		out := make([]Value, len(v.obj))
		for i, m := range v.obj {
			out[i] = m.val
		}
		return out
	}
	return []Value{v}
}
