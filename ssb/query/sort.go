package query

import (
	"fmt"
	"slices"
)

// A sortPath is one path of a $sort stage (npm compare-at-paths):
// {$reverse: path} reverses it and, as in that module, every path after it.
type sortPath struct {
	path    Value
	reverse bool
}

func sortPaths(v Value) []sortPath {
	var ps []Value
	switch v.kind {
	case Array:
		ps = v.arr
	case String:
		for _, u := range units(v.str) {
			ps = append(ps, strValue(fromUnits([]uint16{u})))
		}
	}
	out := make([]sortPath, len(ps))
	for i, p := range ps {
		out[i].path = p
		if p.kind == Object {
			if r := p.get("$reverse"); r.truthy() {
				out[i] = sortPath{path: r, reverse: true}
			}
		}
	}
	return out
}

// nestedGet is npm libnested's get.
func nestedGet(v, path Value) (Value, error) {
	if v.kind != Object && v.kind != Array {
		return undefined, nil
	}
	switch path.kind {
	case String, Number:
		return v.get(propertyKey(path)), nil
	case Array:
		for _, k := range path.arr {
			if v.nullish() {
				return undefined, nil
			}
			if v = v.get(propertyKey(k)); v.nullish() {
				return undefined, nil
			}
		}
		return v, nil
	case Null, Undefined:
		return undefined, typeError("Cannot read properties of %s (reading 'length')", path.typeOfName())
	}
	return v, nil
}

// sortValues sorts stably as Array.prototype.sort does with
// compare-at-paths' comparator (typewiselite at each path).
func sortValues(vs []Value, paths []sortPath) ([]Value, error) {
	var err error
	cmp := func(a, b Value) int {
		if err != nil {
			return 0
		}
		reverse := 1
		for _, p := range paths {
			if p.reverse {
				reverse = -1
			}
			x, e1 := nestedGet(a, p.path)
			y, e2 := nestedGet(b, p.path)
			if e1 != nil || e2 != nil {
				err = fmt.Errorf("$sort: %w", cmpErr(e1, e2))
				return 0
			}
			c, e := typewiseCompare(x, y)
			if e != nil {
				err = fmt.Errorf("$sort: %w", e)
				return 0
			}
			if c != 0 {
				return c * reverse
			}
		}
		return 0
	}
	slices.SortStableFunc(vs, cmp)
	return vs, err
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
