#!/usr/bin/env node
'use strict'
/*
 * bench-sb.js: the JavaScript side of the scuttlebutt Model replication benchmark.
 *
 *   node bench-sb.js serve N
 *     Makes a Model with id "S" and sets keys k0..k(N-1) to {"i":i,"s":"value-"+i}, all before
 *     listening. Then it listens on 127.0.0.1, port 0, with the default createStream for each
 *     connection, and prints one line {"port":P} to stdout. It serves until stdin ends or it
 *     is killed.
 *
 *   node bench-sb.js fetch PORT N
 *     Makes a Model with id "F". It takes t0 = process.hrtime.bigint() just before connecting
 *     to 127.0.0.1:PORT with the default createStream, and counts Model 'update' events whose
 *     source is "S". When N have arrived it takes t1, prints
 *     {"n":N,"ms":(t1-t0)/1e6,"updatesPerSec":N/seconds} and exits 0. If N have not arrived
 *     within 120 s, or the connection fails or closes first, it exits 1 with a message on stderr.
 *
 * Only the result lines go to stdout. Messages go to stderr.
 */

const net = require('net')
const Model = require('scuttlebutt/model')

function usage () {
  process.stderr.write('usage: node bench-sb.js serve N | node bench-sb.js fetch PORT N\n')
  process.exit(2)
}

function posInt (s) {
  const n = Number(s)
  if (!Number.isInteger(n) || n < 0) usage()
  return n
}

function fail (msg) {
  process.stderr.write('bench-sb: ' + msg + '\n')
  process.exit(1)
}

const mode = process.argv[2]

if (mode === 'serve') {
  if (process.argv.length !== 4) usage()
  const n = posInt(process.argv[3])
  const m = new Model('S')
  for (let i = 0; i < n; i++) m.set('k' + i, { i: i, s: 'value-' + i })

  const server = net.createServer({ allowHalfOpen: true }, function (sock) {
    const stream = m.createStream()
    stream.on('error', function (err) { process.stderr.write('bench-sb serve: stream error: ' + (err && err.message) + '\n') })
    sock.on('error', function (err) { process.stderr.write('bench-sb serve: socket error: ' + (err && err.message) + '\n') })
    sock.pipe(stream).pipe(sock)
  })
  server.on('error', function (err) { fail('listen: ' + err.message) })
  server.listen(0, '127.0.0.1', function () {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
  })
  process.stdin.on('end', function () { process.exit(0) })
  process.stdin.resume()
} else if (mode === 'fetch') {
  if (process.argv.length !== 5) usage()
  const port = posInt(process.argv[3])
  const n = posInt(process.argv[4])
  const m = new Model('F')
  let got = 0
  let done = false
  let t0

  const finish = function () {
    if (done) return
    done = true
    const t1 = process.hrtime.bigint()
    const ms = Number(t1 - t0) / 1e6
    process.stdout.write(JSON.stringify({ n: n, ms: ms, updatesPerSec: ms > 0 ? n / (ms / 1000) : null }) + '\n', function () {
      process.exit(0)
    })
  }

  m.on('update', function (change, ts, source) {
    if (source !== 'S') return
    if (++got === n) finish()
  })

  const timer = setTimeout(function () {
    fail('timeout: received ' + got + ' of ' + n + ' updates in 120 s')
  }, 120000)

  t0 = process.hrtime.bigint()
  const sock = net.connect({ host: '127.0.0.1', port: port, allowHalfOpen: true })
  const stream = m.createStream()
  stream.on('error', function (err) { fail('stream error: ' + (err && err.message)) })
  sock.on('error', function (err) { if (!done) fail('socket error: ' + err.message) })
  sock.on('close', function () { if (!done) fail('connection closed after ' + got + ' of ' + n + ' updates') })
  sock.pipe(stream).pipe(sock)
  if (n === 0) sock.once('connect', finish)
} else {
  usage()
}
