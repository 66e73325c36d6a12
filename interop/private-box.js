#!/usr/bin/env node
'use strict'
/*
 * private-box.js: npm private-box@0.3.1 and ssb-keys@8.5.0 box/unbox, for the Go tests and the
 * benchmark of ssb/privatebox. The Go code relies on this file's behaviour; keep it in step with
 * this comment.
 *
 * Two modes.
 *
 * 1. Command loop (no arguments): stdin one JSON command per line, stdout one JSON object per
 * line (lib/driver.js). On start it prints {"ev":"ready"}. Every reply carries the command's
 * "tag"; a command that throws or is unknown gets {"ev":"cmdError","op":OP,"message":M}. Bytes
 * travel as base64. Keys are feed ids ("@…=.ed25519") for recipients and the base64 of the
 * 64-byte Ed25519 secret (seed ‖ public) for our side.
 *
 *   {"op":"box","lib":"private-box","plain":B,"recps":[ID…],"max":M}
 *       private-box multibox(plain, recipients converted with chloride
 *       crypto_sign_ed25519_pk_to_curve25519, max M or the default). Reply {"ev":"box","ct":B}.
 *   {"op":"box","lib":"ssb-keys","content":B,"recps":[ID…]}
 *       ssb-keys box(JSON.parse(text of B), recps). Reply {"ev":"box","content":STRING}, the
 *       "base64.box" string ssb-keys returns.
 *   {"op":"unbox","lib":"private-box","ct":B,"secret":S}
 *       private-box multibox_open(ct, crypto_sign_ed25519_sk_to_curve25519(S)). Reply
 *       {"ev":"unbox","ok":BOOL,"plain":B|null}; ok is false when it returns nothing or throws.
 *   {"op":"unbox","lib":"ssb-keys","content":STRING,"secret":S}
 *       ssb-keys unbox(STRING, {private: S + ".ed25519"}). Reply {"ev":"unbox","ok":BOOL,
 *       "content":B|null} with content = JSON.stringify(result) when it is not undefined.
 *
 * 2. Benchmark: node private-box.js bench FILE SECRET [RUNS]
 *       FILE holds one content string ("base64.box") a line. Each run calls ssb-keys unbox on
 *       every line with one keys object (which caches the converted secret, as ssb-db's keys
 *       object does), counting the lines that open. Reading the file is not timed. Prints one
 *       line: {"n":N,"found":F,"ms":MS,"perSec":R,"runs":RUNS} for the fastest of RUNS (3).
 *
 * 3. Benchmark: node private-box.js boxbench N RUNS FILE
 *       FILE holds a JSON object {"content":C,"recps":[ID…]}. Each run calls ssb-keys box(C, recps)
 *       N times. Prints {"n":N,"ms":MS,"perSec":R,"runs":RUNS} for the fastest run.
 */
const sodium = require('chloride')
const pb = require('private-box')
const ssbKeys = require('ssb-keys')
const fs = require('fs')
const { out, drive } = require('./lib/driver')

const buf = (b) => Buffer.from(b, 'base64')
const b64 = (b) => Buffer.from(b).toString('base64')
const idKey = (id) => buf(id.replace(/^@/, '').replace(/\.ed25519$/, ''))

const ops = {
  box (cmd) {
    if (cmd.lib === 'private-box') {
      const recps = cmd.recps.map((id) => sodium.crypto_sign_ed25519_pk_to_curve25519(idKey(id)))
      return { ev: 'box', ct: b64(pb.multibox(buf(cmd.plain), recps, cmd.max)) }
    }
    if (cmd.lib === 'ssb-keys') {
      const content = JSON.parse(buf(cmd.content).toString('utf8'))
      return { ev: 'box', content: ssbKeys.box(content, cmd.recps) }
    }
    throw new Error('unknown lib ' + cmd.lib)
  },
  unbox (cmd) {
    if (cmd.lib === 'private-box') {
      let plain
      try {
        plain = pb.multibox_open(buf(cmd.ct), sodium.crypto_sign_ed25519_sk_to_curve25519(buf(cmd.secret)))
      } catch (err) {
        plain = null
      }
      return { ev: 'unbox', ok: !!plain, plain: plain ? b64(plain) : null }
    }
    if (cmd.lib === 'ssb-keys') {
      const v = ssbKeys.unbox(cmd.content, { private: cmd.secret + '.ed25519' })
      return { ev: 'unbox', ok: v !== undefined, content: v === undefined ? null : b64(Buffer.from(JSON.stringify(v), 'utf8')) }
    }
    throw new Error('unknown lib ' + cmd.lib)
  }
}

function bench (file, secret, runs) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0)
  const keys = { private: secret + '.ed25519' }
  let best = Infinity
  let found = 0
  for (let r = 0; r < runs; r++) {
    found = 0
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < lines.length; i++) {
      if (ssbKeys.unbox(lines[i], keys) !== undefined) found++
    }
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6)
  }
  out({ n: lines.length, found: found, ms: best, perSec: lines.length / (best / 1000), runs: runs })
}

function boxbench (n, runs, file) {
  const { content, recps } = JSON.parse(fs.readFileSync(file, 'utf8'))
  let best = Infinity
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) ssbKeys.box(content, recps)
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6)
  }
  out({ n: n, ms: best, perSec: n / (best / 1000), runs: runs })
}

if (process.argv[2] === 'boxbench') {
  const n = parseInt(process.argv[3], 10)
  const runs = parseInt(process.argv[4], 10)
  if (!(n > 0) || !(runs > 0) || !process.argv[5]) {
    process.stderr.write('usage: node private-box.js boxbench N RUNS FILE\n')
    process.exit(2)
  }
  boxbench(n, runs, process.argv[5])
} else if (process.argv[2] === 'bench') {
  const runs = parseInt(process.argv[5] || '3', 10)
  if (!process.argv[3] || !process.argv[4] || !(runs > 0)) {
    process.stderr.write('usage: node private-box.js bench FILE SECRET [RUNS]\n')
    process.exit(2)
  }
  bench(process.argv[3], process.argv[4], runs)
} else {
  drive(ops)
  out({ ev: 'ready' })
}
