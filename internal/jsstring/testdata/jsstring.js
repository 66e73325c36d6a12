#!/usr/bin/env node
'use strict'
/*
 * jsstring.js: V8's own string operations, the judge of internal/jsstring's tests. Follows the
 * internal/oracle convention: one JSON command per line on stdin, exactly one reply per command
 * carrying its "tag" ({"ev":"cmdError","message":M} if it throws), nothing else on stdout; exits
 * when stdin ends. Bytes travel as base64 so that any byte string crosses the pipe intact.
 *
 *   {"op":"decode","inputs":[B...]}
 *       s = Buffer.from(B, 'base64').toString('utf8') (the WHATWG UTF-8 decoder) for each input.
 *       Reply {"ev":"decode","units":[[U...]...],"ascii":[B...]}: the UTF-16 code units of s, and
 *       JSON.stringify(s) with every code unit from 0x80 up written as \uxxxx (UTF-8, base64).
 *   {"op":"stringify","strings":[[U...]...]}
 *       s = the string of those UTF-16 code units, lone surrogates allowed. Reply
 *       {"ev":"stringify","json":[B...],"length":[N...]}: JSON.stringify(s) (UTF-8, base64; it
 *       holds no lone surrogate) and s.length.
 */
const readline = require('readline')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64')
const units = (s) => Array.from({ length: s.length }, (_, i) => s.charCodeAt(i))
const escapeNonASCII = (j) => j.replace(/[\u0080-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))

const ops = {
  decode: (cmd) => {
    const strs = cmd.inputs.map((b) => Buffer.from(b, 'base64').toString('utf8'))
    return { ev: 'decode', units: strs.map(units), ascii: strs.map((s) => b64(escapeNonASCII(JSON.stringify(s)))) }
  },
  stringify: (cmd) => {
    const strs = cmd.strings.map((us) => us.map((u) => String.fromCharCode(u)).join(''))
    return { ev: 'stringify', json: strs.map((s) => b64(JSON.stringify(s))), length: strs.map((s) => s.length) }
  }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd = {}
  try {
    cmd = JSON.parse(line)
    const op = ops[cmd.op]
    if (!op) throw new Error('unknown op ' + cmd.op)
    out({ ...op(cmd), tag: cmd.tag })
  } catch (err) {
    out({ ev: 'cmdError', op: cmd.op, message: String(err && err.message), tag: cmd.tag })
  }
})
