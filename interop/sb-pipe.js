#!/usr/bin/env node
'use strict'
/*
 * sb-pipe.js: an npm scuttlebutt@5.6.15 model peer whose connections are wired the way the
 * scuttlebutt README wires them, with Node's default sockets (allowHalfOpen: false):
 *     net.createServer(function (sock) { sock.pipe(model.createStream()).pipe(sock) })
 * Such a socket ends its own output as soon as its input ends, like a transport that cannot
 * half-close. The Go interop tests use it to check how streams end over connections that
 * cannot half-close. Driven over stdin/stdout like sb-peer.js (see lib/driver.js).
 *
 * Usage: node sb-pipe.js --id ID
 * On start it prints {"ev":"ready","id":ID}.
 *
 * Commands (one JSON object per line; each gets one reply carrying the command's "tag"):
 *   {"op":"listen","stream":OPTS}  listen on 127.0.0.1, any port; each accepted socket gets
 *       sb.createStream(OPTS) piped as above and prints {"ev":"accepted","conn":N}.
 *       Reply {"ev":"listening","port":P}.
 *   {"op":"set","key":K,"value":V} sb.set(K,V); reply {"ev":"ok"}
 *   {"op":"dump"}                  reply {"ev":"state","json":sb.toJSON(),"clock":sb.sources,
 *                                  "streams":sb._streams}
 *   {"op":"exit"}                  reply {"ev":"ok"}, close everything and exit 0 (also on stdin end).
 * Events for connection N: {"ev":"sync","conn":N} (stream 'sync'), {"ev":"streamEnd","conn":N}
 * (stream 'end', its output ended), {"ev":"close","conn":N} (socket 'close'),
 * {"ev":"error","conn":N,"message":M} (stream or socket 'error').
 * Events on the scuttlebutt: {"ev":"unstream","streams":S} ('unstream': a stream closed, S
 * streams remain open).
 */

const { out, withTag, drive } = require('./lib/driver')
const net = require('net')
const Model = require('scuttlebutt/model')

const argv = process.argv.slice(2)
if (argv.length !== 2 || argv[0] !== '--id' || argv[1] === '') {
  process.stderr.write('usage: node sb-pipe.js --id ID\n')
  process.exit(2)
}
const sb = new Model(argv[1])
sb.on('unstream', function (n) { out({ ev: 'unstream', streams: n }) })

const servers = []
const socks = []
let nextConn = 1

const handlers = {
  listen: function (cmd, reply) {
    const server = net.createServer(function (sock) {
      const n = nextConn++
      socks.push(sock)
      sock.on('error', function (err) { out({ ev: 'error', conn: n, message: String(err && err.message) }) })
      sock.on('close', function () { out({ ev: 'close', conn: n }) })
      out({ ev: 'accepted', conn: n })
      const stream = sb.createStream(JSON.parse(JSON.stringify(cmd.stream || {})))
      stream.on('sync', function () { out({ ev: 'sync', conn: n }) })
      stream.on('end', function () { out({ ev: 'streamEnd', conn: n }) })
      stream.on('error', function (err) { out({ ev: 'error', conn: n, message: String(err && err.message) }) })
      sock.pipe(stream).pipe(sock)
    })
    servers.push(server)
    server.on('error', function (err) {
      reply({ ev: 'cmdError', op: 'listen', message: String(err && err.message) })
    })
    server.listen(0, '127.0.0.1', function () {
      reply({ ev: 'listening', port: server.address().port })
    })
    return 'async'
  },

  set: function (cmd) {
    sb.set(cmd.key, cmd.value)
    return { ev: 'ok' }
  },

  dump: function () {
    return { ev: 'state', json: sb.toJSON(), clock: sb.sources, streams: sb._streams }
  },

  exit: function (cmd) {
    out(withTag({ ev: 'ok' }, cmd))
    driver.stop()
    return 'async'
  }
}

const driver = drive(handlers, function () {
  for (const s of servers) { try { s.close() } catch (e) {} }
  for (const s of socks) { try { s.destroy() } catch (e) {} }
})

out({ ev: 'ready', id: sb.id })
