#!/usr/bin/env node
'use strict'
/*
 * ssb-validate-bench.js: the JavaScript side of bench/ssbstore's validation comparison.
 *
 *   node ssb-validate-bench.js FILE [RUNS]
 *
 * FILE holds signed SSB messages, one compact JSON message per line, each feed's messages in
 * sequence order (feeds may interleave). Each run starts from ssb-validate's initial state and,
 * for every line, does what a server does with a message from the wire: JSON.parse, then
 * ssb-validate@4.1.4 append (sequence and previous chain, shape, signature through ssb-keys and
 * sodium-native, message id). The validated queue is drained every 1,000 messages, as ssb-db
 * drains it by writing. Reading the file is not timed.
 *
 * It prints one line of JSON to stdout, for the fastest of RUNS runs (default 3):
 *   {"n":N,"ms":MS,"msgsPerSec":R,"runs":RUNS}
 * and exits 1 with a message on stderr if any message is invalid.
 */

const fs = require('fs')
const validate = require('ssb-validate')

function main () {
  const file = process.argv[2]
  const runs = parseInt(process.argv[3] || '3', 10)
  if (!file || !(runs > 0)) {
    process.stderr.write('usage: node ssb-validate-bench.js FILE [RUNS]\n')
    process.exit(2)
  }
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0)
  let best = Infinity
  for (let r = 0; r < runs; r++) {
    let state = validate.initial()
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < lines.length; i++) {
      const msg = JSON.parse(lines[i])
      try {
        state = validate.append(state, null, msg)
      } catch (err) {
        process.stderr.write('message ' + i + ' is invalid: ' + err.message + '\n')
        process.exit(1)
      }
      if (state.queue.length >= 1000) state.queue = []
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    if (state.validated !== lines.length) {
      process.stderr.write('validated ' + state.validated + ' of ' + lines.length + '\n')
      process.exit(1)
    }
    best = Math.min(best, ms)
  }
  process.stdout.write(JSON.stringify({ n: lines.length, ms: best, msgsPerSec: lines.length / (best / 1000), runs: runs }) + '\n')
}

main()
