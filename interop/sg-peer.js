#!/usr/bin/env node
'use strict'
/*
 * sg-peer.js: a scriptable npm secure-gossip@0.3.1 peer, driven over stdin/stdout.
 * The Go interop tests (gossip/interop_test.go) rely on this file's behaviour. Keep it in
 * step with this comment.
 *
 * Usage: node sg-peer.js [--seed S] [--interval MS]
 *   --seed S        keys = ssbkeys.generate('ed25519', S) (a string seed); random if absent
 *   --interval MS   passed to secure-gossip as opts.interval (default: 100; -1 disables rounds)
 *
 * stdin:  one JSON command per line. stdout: one JSON line per event or reply; nothing else is
 * written to stdout. On start the peer prints {"ev":"ready","public":P} with P = keys.public.
 *
 * Commands. Every command gets exactly one reply, carrying the command's "tag" if it has one.
 * Commands run one at a time, in order; listen and connect wait for their socket.
 *   {"op":"listen","port":0}   listen on 127.0.0.1 (only); every accepted socket gets
 *       s = gossip.createPeerStream(), then sock.pipe(s).pipe(sock). Reply {"ev":"listening","port":P};
 *       each accepted connection prints {"ev":"accepted","conn":N}.
 *   {"op":"connect","port":P}  dial 127.0.0.1:P, same piping. Reply {"ev":"connected","conn":N}.
 *   {"op":"publish","msg":M}   gossip.publish(M); reply {"ev":"ok"}
 *   {"op":"gossip"}            gossip.gossip() (one round by hand); reply {"ev":"ok"}
 *   {"op":"stop"}              gossip.stop(); reply {"ev":"ok"}
 *   {"op":"info"}              reply {"ev":"info","public":P,"seqs":gossip.seqs,"store":N}
 *       (seqs: the highest seq seen per public key; store: lines waiting for the next round)
 *   {"op":"end","conn":N}      the peer stream's end(); reply {"ev":"ok"}
 *   {"op":"destroy","conn":N}  the socket's destroy(); reply {"ev":"ok"}
 *   {"op":"exit"}              reply {"ev":"ok"}, close everything and exit 0 (also on stdin end)
 *   A command that fails gets {"ev":"cmdError","op":OP,"message":M} instead.
 *
 * Events:
 *   {"ev":"message","msg":M,"public":P}  gossip 'message' (M: the payload, signature removed)
 *   {"ev":"debug","text":T}              a line of secure-gossip's own debug output: how it
 *       classified each line ("bad json (or end of stream)", "received message with bad
 *       signature! discarding", "old gossip; discarding", "got one of my own messages; discarding",
 *       "current seq for ...")
 *   {"ev":"accepted"|"close","conn":N}, {"ev":"error","conn":N,"message":M} (socket or stream)
 *   {"ev":"crash","message":M}           an uncaught exception; the peer then exits 1
 */

const { out, withTag, drive } = require('./lib/driver')

const net = require('net')
const util = require('util')

// secure-gossip's debug output becomes events. It must be enabled before secure-gossip is
// loaded: debug@2 decides whether a namespace is on when the logger is created.
const debugModule = require('debug')
debugModule.enable('secure-gossip')
debugModule.log = function () {
  out({ ev: 'debug', text: util.format.apply(util, arguments) })
}

const ssbkeys = require('ssb-keys')
const Gossip = require('secure-gossip')

function die (msg) {
  process.stderr.write('sg-peer: ' + msg + '\n')
  process.exit(2)
}

const args = { interval: 100 }
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i]
  if (a === '--seed') args.seed = process.argv[++i]
  else if (a === '--interval') args.interval = Number(process.argv[++i])
  else die('unknown argument: ' + a)
}

process.on('uncaughtException', function (err) {
  out({ ev: 'crash', message: String(err && err.stack) })
  process.exit(1)
})

const keys = args.seed !== undefined ? ssbkeys.generate('ed25519', args.seed) : ssbkeys.generate()
const gossip = Gossip({ keys: keys, interval: args.interval })
gossip.on('message', function (msg, info) {
  out({ ev: 'message', msg: msg, public: info.public })
})

const conns = new Map() // N -> {sock, stream}
const servers = []
let nextConn = 1

function attach (n, sock) {
  const stream = gossip.createPeerStream()
  conns.get(n).stream = stream
  stream.on('error', function (err) {
    out({ ev: 'error', conn: n, message: String(err && err.message) })
  })
  sock.pipe(stream).pipe(sock)
}

function watch (n, sock) {
  sock.on('error', function (err) {
    out({ ev: 'error', conn: n, message: String(err && err.message) })
  })
  sock.on('close', function () { out({ ev: 'close', conn: n }) })
}

function getConn (cmd) {
  const c = conns.get(cmd.conn)
  if (!c) throw new Error('unknown conn ' + JSON.stringify(cmd.conn))
  return c
}

const handlers = {
  listen: function (cmd, reply) {
    const server = net.createServer(function (sock) {
      const n = nextConn++
      conns.set(n, { sock: sock, stream: null })
      watch(n, sock)
      out({ ev: 'accepted', conn: n })
      attach(n, sock)
    })
    servers.push(server)
    server.on('error', function (err) {
      reply({ ev: 'cmdError', op: 'listen', message: String(err && err.message) })
    })
    server.listen(cmd.port || 0, '127.0.0.1', function () {
      reply({ ev: 'listening', port: server.address().port })
    })
    return 'async'
  },

  connect: function (cmd, reply) {
    if (typeof cmd.port !== 'number') throw new Error('connect needs a numeric port')
    const n = nextConn++
    const sock = net.connect({ host: '127.0.0.1', port: cmd.port })
    conns.set(n, { sock: sock, stream: null })
    watch(n, sock)
    const onFail = function (err) {
      reply({ ev: 'cmdError', op: 'connect', conn: n, message: String(err && err.message) })
    }
    sock.once('error', onFail)
    sock.once('connect', function () {
      sock.removeListener('error', onFail)
      reply({ ev: 'connected', conn: n })
      attach(n, sock)
    })
    return 'async'
  },

  publish: function (cmd) {
    gossip.publish(cmd.msg)
    return { ev: 'ok' }
  },

  gossip: function () {
    gossip.gossip()
    return { ev: 'ok' }
  },

  stop: function () {
    gossip.stop()
    return { ev: 'ok' }
  },

  info: function () {
    return { ev: 'info', public: keys.public, seqs: gossip.seqs, store: gossip.store.length }
  },

  end: function (cmd) {
    getConn(cmd).stream.end()
    return { ev: 'ok' }
  },

  destroy: function (cmd) {
    getConn(cmd).sock.destroy()
    return { ev: 'ok' }
  },

  exit: function (cmd) {
    out(withTag({ ev: 'ok' }, cmd))
    driver.stop()
    return 'async'
  }
}


const driver = drive(handlers, function () {
  gossip.stop()
  for (const s of servers) { try { s.close() } catch (e) {} }
  for (const c of conns.values()) { try { c.sock.destroy() } catch (e) {} }
})

out({ ev: 'ready', public: keys.public })
