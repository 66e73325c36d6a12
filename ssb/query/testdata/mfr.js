#!/usr/bin/env node
'use strict'
/*
 * mfr.js: runs queries through the JavaScript that ssb-server@16 runs
 * them with (map-filter-reduce@3 under flumeview-query@8, and
 * flumeview-query's explain with ssb-query@2.4's indexes), for
 * ssb/query's differential tests. Run from the interop directory.
 *
 * Usage: node mfr.js FILE, FILE = {"items": [...], "cases": [
 *   {"query": Q}                 -> {"out": [...]} or {"error": "..."}
 *   {"explain": OPTS}            -> {"out": {...}} or {"error": "..."}
 *   {"charwise": ARRAY}          -> {"out": "<flumeview-level's key>"}
 * ]}; prints one JSON array of the answers.
 */
const path = require('path')
const fs = require('fs')
const nm = path.join(process.cwd(), 'node_modules')
const pull = require(path.join(nm, 'pull-stream'))
const mfr = require(path.join(nm, 'flumeview-query', 'node_modules', 'map-filter-reduce'))
const Explain = require(path.join(nm, 'flumeview-query', 'explain'))
const charwise = require(path.join(nm, 'charwise'))

console.log = function () {} // map-filter-reduce@3 logs from isRange and $sort

const indexes = [
  { key: 'log', value: ['timestamp'] },
  { key: 'clk', value: [['value', 'author'], ['value', 'sequence']] },
  { key: 'typ', value: [['value', 'content', 'type'], ['timestamp']] },
  { key: 'tya', value: [['value', 'content', 'type'], ['value', 'timestamp']] },
  { key: 'cha', value: [['value', 'content', 'channel'], ['timestamp']] },
  { key: 'aty', value: [['value', 'author'], ['value', 'content', 'type'], ['timestamp']] },
  { key: 'ata', value: [['value', 'author'], ['value', 'content', 'type'], ['value', 'timestamp']] },
  { key: 'art', value: [['value', 'content', 'root'], ['value', 'timestamp']] },
  { key: 'lor', value: [['rts']] }
].map(e => ({ key: e.key, value: e.value, exact: true, createStream: function () {} }))

const explain = Explain(indexes, function () {})

function ssbQueryExplain (opts) { // ssb-query's wrapper
  if (!opts) opts = {}
  if (typeof opts === 'string') opts = { query: JSON.parse(opts) }
  else if (typeof opts.query === 'string') opts.query = JSON.parse(opts.query)
  return explain(opts)
}

const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const answers = input.cases.map(c => {
  try {
    if ('charwise' in c) return { out: charwise.encode(c.charwise) }
    if ('explain' in c) return { out: JSON.parse(JSON.stringify(ssbQueryExplain(c.explain))) }
    let out
    const items = JSON.parse(JSON.stringify(input.items))
    pull(pull.values(items), mfr(c.query), pull.collect((err, ary) => {
      if (err) throw err
      out = ary
    }))
    return { out: JSON.parse(JSON.stringify(out)) }
  } catch (err) {
    return { error: String(err && err.message) }
  }
})
process.stdout.write(JSON.stringify(answers))
