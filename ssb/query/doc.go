// Package query is map-filter-reduce as ssb-query 2.4 runs it in
// ssb-server 16: npm map-filter-reduce@3.2 (the copy under
// flumeview-query@8) for the stages, and flumeview-query's planner with
// ssb-query's nine indexes.
//
// A query is an array of stages. $filter keeps the items a rule accepts:
// objects and arrays without $-keys match member by member, basic values
// by ===, and the operators $lt $gt $lte $gte (JavaScript's < and <=,
// coercions included), $eq $ne (===), $prefix (string or array), $in,
// $is (typeof), $not, $truthy, $int, $mod, $type and $get apply to the
// value (several in one object are ANDed, as with JavaScript's &&). $map
// takes a key, a path (an array of rules applied in turn; integers index
// arrays, negative ones from the end), true, or an object of those. A map
// result that is falsy drops the item. $reduce takes $count, $sum,
// $product, $max, $min or $collect, or an object of them in which the
// members that are maps are the group keys: the groups come out sorted by
// them (npm typewiselite's order). $sort sorts by paths ({$reverse: path}
// reverses). Anything else is an error with map-filter-reduce's message
// ("unknown function:$x" for a stage, "could not process:..." for a
// rule): there is no $first or $last. Where JavaScript would throw while
// reading a message (a TypeError), the run fails with ErrEval.
//
// Explain picks the index as flumeview-query does and gives its bounds in
// flumeview-query's shape; Plan.Key and Plan.InRange use the keys
// flumeview-level stores (charwise-encoded arrays), so that a reader can
// give the messages of a range in the index's order.
//
// map-filter-reduce has no bounds; here a query is at most MaxQuerySize
// bytes, MaxDepth deep, MaxNodes values and MaxStages stages, and the
// $reduce and $sort stages of a run hold at most its budget of bytes.
package query
