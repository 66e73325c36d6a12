#!/usr/bin/env node
'use strict'
/*
 * ssb-call.js: connects to an SSB server with the real ssb-client@4.9.0
 * (secret handshake, box-stream, muxrpc) and makes calls, for the Go tests.
 *
 * Usage: node ssb-call.js CONFIG_JSON
 *   CONFIG_JSON = {
 *     "host": "127.0.0.1", "port": P,          (loopback only)
 *     "key": "@<server>.ed25519",              the server's feed id
 *     "caps": "<base64 network key>",
 *     "keys": {curve, public, private, id},    optional ssb-keys object; generated if absent
 *     "manifest": {...},                       optional; else ssb-client asks the server
 *     "calls": [{"method":"whoami","type":"async","args":[]},
 *               {"method":"createHistoryStream","type":"source","args":[{...}]},
 *               {"method":"blobs.add","type":"sink","args":[],"input":"<base64>",
 *                "inputFile":PATH, "chunk":65536}]
 *   }
 * A sink call writes input's bytes (or inputFile's, for large ones) in chunks of chunk bytes
 * (default 64 KiB; ssb-client's blobs.add collects them and hashes them first). A source whose items are all binary gives
 * {"binary":"<base64 of their concatenation>","chunks":[sizes]}.
 * Output, one JSON line each: {"ready":true,"id":"<client id>"} once connected,
 * then per call in order {"method":M,"result":R} or {"method":M,"error":E}
 * (source calls collect every item into an array), then {"done":true}.
 * A failure to connect prints {"connectError":E} (and exits 0).
 */
const ssbClient = require('ssb-client')
const ssbKeys = require('ssb-keys')
const pull = require('pull-stream')

const cfg = JSON.parse(process.argv[2])
const keys = cfg.keys || ssbKeys.generate()
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n')

const opts = { host: cfg.host, port: cfg.port, key: cfg.key, caps: { shs: cfg.caps } }
if (cfg.manifest) opts.manifest = cfg.manifest

// sinkInput is a pull source of the call's input in chunks.
function sinkInput (c) {
  const buf = c.inputFile ? require('fs').readFileSync(c.inputFile) : Buffer.from(c.input || '', 'base64')
  const size = c.chunk || 65536
  let off = 0
  return (abort, cb) => {
    if (abort) return cb(abort)
    if (off < buf.length) {
      const chunk = buf.subarray(off, off + size)
      off += chunk.length
      return cb(null, chunk)
    }
    cb(true)
  }
}

ssbClient(keys, opts, (err, sbot) => {
  if (err) {
    print({ connectError: err.message })
    process.exit(0) // an expected outcome in some tests
  }
  print({ ready: true, id: keys.id })
  const calls = cfg.calls || []
  let i = 0
  const next = () => {
    if (i >= calls.length) {
      print({ done: true })
      return sbot.close(true, () => process.exit(0))
    }
    const c = calls[i++]
    const path = c.method.split('.')
    let fn = sbot
    for (const p of path) fn = fn && fn[p]
    const done = (err, result) => {
      if (err) print({ method: c.method, error: err.message || String(err) })
      else print({ method: c.method, result: result === undefined ? null : result })
      next()
    }
    if (typeof fn !== 'function') return done(new Error('no method ' + c.method + ' in the manifest'))
    try {
      if (c.type === 'source') {
        pull(fn.apply(sbot, c.args || []), pull.collect((err, items) => {
          if (!err && items.length > 0 && items.every(Buffer.isBuffer)) {
            items = { binary: Buffer.concat(items).toString('base64'), chunks: items.map((b) => b.length) }
          }
          done(err, items)
        }))
      } else if (c.type === 'sink') {
        // A sink's callback fires once its end is queued: one round trip
        // more (manifest; any answer, an error too, will do) makes sure the
        // server has read the stream before the next call or the close.
        pull(sinkInput(c), fn.apply(sbot, (c.args || []).concat([(err, result) => {
          sbot.manifest(() => done(err, result))
        }])))
      }
      else fn.apply(sbot, (c.args || []).concat([done]))
    } catch (e) { done(e) }
  }
  next()
})
