// Runs ssb-blobs' own inject.js on want-map messages, to judge
// wants.Decode and the core's take-up against it (message_test.go).
// Input (stdin): a JSON array of message strings. Output (stdout): for each,
// {"ok": bool, "entries": {id: sign}, "forwarded": {id: hops}}, where
// entries is the isBlobId && Number.isInteger filter of process() and
// forwarded what inject.js sends to another peer after a peer sent the
// message (wants it takes up; sympathy 3, nothing here).
'use strict'
var path = require('path')
var modules = path.join(process.env.INTEROP, 'node_modules')
var pull = require(path.join(modules, 'pull-stream'))
var inject = require(path.join(modules, 'ssb-blobs/inject'))
var isBlobId = require(path.join(modules, 'ssb-ref')).isBlob

function run (text) {
  var data
  try { data = JSON.parse(text) } catch (e) { return {ok: false, entries: {}, forwarded: {}} }
  var ok = data !== null && typeof data === 'object' && !Array.isArray(data)
  var entries = {}
  for (var k in data) {
    if (isBlobId(k) && Number.isInteger(data[k])) entries[k] = Math.sign(data[k])
  }
  var store = {
    size: function (id, cb) { cb(null, null) },
    ls: function () { return pull.empty() },
    isEmptyHash: function () { return false }
  }
  var blobs = inject(store, {add: function () {}, remove: function () {}}, 'us', {})
  var forwarded = {}
  pull(blobs.createWants.call({id: 'listener'}), pull.drain(function (m) {
    for (var k in m) forwarded[k] = m[k]
  }))
  if (ok) pull(pull.once(data), blobs._wantSink({id: 'sender'}))
  return {ok: ok, entries: entries, forwarded: forwarded}
}

var input = ''
process.stdin.on('data', function (d) { input += d })
process.stdin.on('end', function () {
  process.stdout.write(JSON.stringify(JSON.parse(input).map(run)))
})
