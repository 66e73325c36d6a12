'use strict'
/*
 * git-ssb-trace.js: records the muxrpc calls that git-ssb and git-remote-ssb
 * make, for the Go test of git-ssb against a server (cmd/sbot/gitssb_test.go).
 * It changes nothing they send or receive: it only watches.
 *
 * Usage: NODE_OPTIONS="--require /path/to/interop/git-ssb-trace.js"
 *        GITSSB_TRACE=/path/to/trace.jsonl git ...
 * Every node process started with it appends JSON lines to GITSSB_TRACE:
 *   {"pid":P,"method":"links","type":"source","args":"[...]"}  a call (args cut to 300 characters)
 *   {"pid":P,"method":"links","type":"source","items":N}        a stream that ended well
 *   {"pid":P,"method":"get","type":"async","ok":true}           a request that was answered
 *   {"pid":P,"method":"links","type":"source","error":"..."}    a call that failed
 * Lines are appended with one write each (O_APPEND), so processes may share the file.
 */
const fs = require('fs')
const path = require('path')

const file = process.env.GITSSB_TRACE
if (file) {
  const fd = fs.openSync(file, 'a')
  const log = (o) => fs.writeSync(fd, JSON.stringify(Object.assign({ pid: process.pid }, o)) + '\n')
  const errText = (err) => String((err && err.message) || err)

  // The remote API of ssb-client's muxrpc: every call goes through the
  // function it is given, so wrapping that function sees them all.
  const modPath = require.resolve('muxrpc/remote-api', { paths: [__dirname] })
  const createRemoteApi = require(modPath)
  require.cache[modPath].exports = function (obj, manifest, remoteCall, bootstrapCB) {
    return createRemoteApi(obj, manifest, function (type, name, args, cb) {
      const method = Array.isArray(name) ? name.join('.') : String(name)
      let shown = ''
      try { shown = JSON.stringify(args) } catch (e) { shown = '(unprintable)' }
      log({ method, type, args: shown.length > 300 ? shown.slice(0, 300) + '...' : shown })
      const wrapped = function (err, val) {
        if (err && err !== true) log({ method, type, error: errText(err) })
        else if (type !== 'source') log({ method, type, ok: true })
        return cb.apply(this, arguments)
      }
      const s = remoteCall(type, name, args, wrapped)
      if (type !== 'source' || typeof s !== 'function') return s
      let items = 0
      let ended = false
      return function (abort, next) {
        s(abort, function (end, data) {
          if (!end) items++
          else if (!ended) {
            ended = true
            if (end === true) log({ method, type, items })
            else log({ method, type, error: errText(end) })
          }
          next(end, data)
        })
      }
    }, bootstrapCB)
  }
  log({ start: path.basename(process.argv[1] || ''), argv: process.argv.slice(2) })
}
