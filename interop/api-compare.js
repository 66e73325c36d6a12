#!/usr/bin/env node
'use strict'
/*
 * api-compare.js: ssb-call.js (the real ssb-client@4.9.0 making a list of
 * calls) extended for ssb/plugins/all's API comparison: live sources read
 * up to a count, calls left running while later ones go on, arguments taken
 * from an earlier call's result, and blob adds that wait until the server
 * holds the blob.
 *
 * Usage: node api-compare.js CONFIG_JSON
 *   CONFIG_JSON = as ssb-call.js's: host, port, key, caps, keys, manifest, calls.
 *   Each call, beyond ssb-call.js's method/type/args/input/inputFile/chunk:
 *     "take": N         a source is read for N items only (a live one then ends)
 *     "background": true  the call starts and the next one starts at once;
 *                       its result is printed when it ends (before "done")
 *     args may hold {"$ref": [I, "a.b"]}: field a.b of call I's result (I
 *     must have ended before this call starts)
 *     "timeout": ms     a call that has not ended after ms (default the config's
 *                       "callTimeout", else 10000) gives the error "timeout
 *                       after ms"; the next call starts (the late call is
 *                       left open until the client closes)
 *     a sink to blobs.add waits (2 s at most) until blobs.has says the
 *     server holds the blob, since the sink's callback fires before
 *     the server has stored it
 *     "values": [...]   a sink gets these JSON values (createWriteStream's
 *                       messages) instead of the bytes of input/inputFile
 *     type "duplex": the call's source is read for "take" items (default
 *                       1) while its sink gets "values" (then stays open
 *                       until the items are read); the result is the
 *                       items read, or the stream's error
 *     "until": ms       a duplex is read for ms at most: the result is the
 *                       items read by then (fewer than "take")
 *     "as": KEYS        the call goes through a second ssb-client
 *                       connection made with these ssb-keys (a peer
 *                       other than the owner), opened at its first call
 *                       with the owner's manifest, closed at the end
 * Output, one JSON line each: {"ready":true,"id":...}, then per call
 * {"i":I,"method":M,"result":R} or {"i":I,"method":M,"error":E,"errorName":N}
 * (N: the error's name, which muxrpc carries from the server), in the
 * order calls end, then {"done":true}. A failure to connect prints
 * {"connectError":E}. Sources whose items are all binary give
 * {"binary":"<base64>","chunks":[sizes]}, as ssb-call.js.
 */
const ssbClient = require('ssb-client')
const ssbKeys = require('ssb-keys')
const pull = require('pull-stream')

const cfg = JSON.parse(process.argv[2])
const keys = cfg.keys || ssbKeys.generate()
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n')

const opts = { host: cfg.host, port: cfg.port, key: cfg.key, caps: { shs: cfg.caps } }
if (cfg.manifest) opts.manifest = cfg.manifest

function sinkInput (c) {
  if (c.values) return pull.values(c.values)
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

const results = []

// resolve replaces {"$ref": [i, path]} in args with call i's result field.
function resolve (v) {
  if (Array.isArray(v)) return v.map(resolve)
  if (v && typeof v === 'object') {
    if (Array.isArray(v.$ref)) {
      let r = results[v.$ref[0]]
      for (const p of String(v.$ref[1] || '').split('.').filter(Boolean)) r = r && r[p]
      return r
    }
    const o = {}
    for (const k of Object.keys(v)) o[k] = resolve(v[k])
    return o
  }
  return v
}

ssbClient(keys, opts, (err, sbot) => {
  if (err) {
    print({ connectError: err.message })
    process.exit(0)
  }
  print({ ready: true, id: keys.id })
  const calls = cfg.calls || []
  let running = 0
  let i = 0
  let finished = false
  const finish = () => {
    if (finished || i < calls.length || running > 0) return
    finished = true
    print({ done: true })
    for (const id of Object.keys(peers)) if (peers[id] && peers[id].rpc) peers[id].rpc.close(true, () => {})
    sbot.close(true, () => process.exit(0))
  }
  // waitBlob polls blobs.has until it is true or 2 s have passed.
  const waitBlob = (id, cb) => {
    const until = Date.now() + 2000
    const poll = () => sbot.blobs.has(id, (err, has) => {
      if (err || has || Date.now() > until) return cb()
      setTimeout(poll, 10)
    })
    poll()
  }
  // peers are the connections made with other keys ("as"), by id.
  const peers = {}
  const peerFor = (k, cb) => {
    if (peers[k.id]) return peers[k.id].push(cb)
    peers[k.id] = [cb]
    sbot.manifest((err, manifest) => {
      const fire = (err, rpc) => {
        const waiting = peers[k.id]
        peers[k.id] = rpc ? { rpc, push: (f) => f(null, rpc) } : null
        waiting.forEach((f) => f(err, rpc))
      }
      if (err) return fire(err)
      ssbClient(k, Object.assign({}, opts, { manifest }), fire)
    })
  }
  const run = (idx, c, cb) => {
    if (c.as) {
      return peerFor(c.as, (err, rpc) => {
        if (err) {
          print({ i: idx, method: c.method, error: 'connecting as ' + c.as.id + ': ' + (err.message || String(err)), errorName: err.name })
          return cb()
        }
        runOn(rpc, idx, c, cb)
      })
    }
    runOn(sbot, idx, c, cb)
  }
  const runOn = (sbot, idx, c, cb) => {
    const path = c.method.split('.')
    let fn = sbot
    for (const p of path) fn = fn && fn[p]
    let called = false
    const ms = c.timeout || cfg.callTimeout || 10000
    const timer = setTimeout(() => done(new Error('timeout after ' + ms + ' ms')), ms)
    const done = (err, result) => {
      if (called) return
      called = true
      clearTimeout(timer)
      if (err) print({ i: idx, method: c.method, error: err.message || String(err), errorName: err.name })
      else {
        results[idx] = result
        print({ i: idx, method: c.method, result: result === undefined ? null : result })
      }
      cb()
    }
    if (typeof fn !== 'function') return done(new Error('no method ' + c.method + ' in the manifest'))
    const args = resolve(c.args || [])
    try {
      if (c.type === 'duplex') {
        const d = fn.apply(sbot, args)
        const vals = c.values || []
        let n = 0
        let hold = null // the sink's read after the values: answered once the items are read
        const release = (end) => { if (hold) { const h = hold; hold = null; h(end) } }
        d.sink((abort, cb2) => {
          if (abort) { release(abort); return cb2(abort) }
          if (n < vals.length) return cb2(null, vals[n++])
          hold = cb2
        })
        const items = []
        let stop = null // the "until" timer
        const end = (err) => {
          clearTimeout(stop)
          done(err, items)
          release(true)
        }
        const drain = pull.drain((x) => { items.push(x) }, end)
        if (c.until) stop = setTimeout(() => { drain.abort(); end(null) }, c.until)
        pull(d.source, pull.take(c.take || 1), drain)
      } else if (c.type === 'source') {
        const src = fn.apply(sbot, args)
        pull(src, c.take ? pull.take(c.take) : pull.through(), pull.collect((err, items) => {
          if (!err && items.length > 0 && items.every(Buffer.isBuffer)) {
            items = { binary: Buffer.concat(items).toString('base64'), chunks: items.map((b) => b.length) }
          }
          done(err, items)
        }))
      } else if (c.type === 'sink') {
        pull(sinkInput(c), fn.apply(sbot, args.concat([(err, result) => {
          sbot.manifest(() => {
            if (err || c.method !== 'blobs.add') return done(err, result)
            waitBlob(result, () => done(err, result))
          })
        }])))
      } else fn.apply(sbot, args.concat([done]))
    } catch (e) { done(e) }
  }
  const next = () => {
    if (i >= calls.length) return finish()
    const idx = i++
    const c = calls[idx]
    running++
    if (c.background) {
      run(idx, c, () => { running--; finish() })
      return setImmediate(next)
    }
    run(idx, c, () => { running--; next() })
  }
  next()
})
