#!/usr/bin/env node
'use strict'
/*
 * sb-peer.js: a scriptable npm scuttlebutt@5.6.15 peer, driven over stdin/stdout.
 * The Go interop tests rely on this file's behaviour. Keep it in step with this comment.
 *
 * Usage: node sb-peer.js --type model|events --id ID
 *        node sb-peer.js --type model|events --private PEM --public PEM [--trust PEM]...
 *   model  -> new (require('scuttlebutt/model'))(ID)
 *   events -> new (require('scuttlebutt/events'))(ID)
 * Signed mode (--private and --public, paths of PEM files): the scuttlebutt is created with
 *   require('scuttlebutt/security')(keys, PRIVATE, PUBLIC), so its id is security.createId()
 *   (base64 of the SHA-1 of the public PEM file's bytes) and --id must be left out. keys maps
 *   id -> public PEM: it holds our own key and each --trust file (a public PEM path, the id
 *   computed the same way), as npm scuttlebutt's test/secure.js fills it.
 *
 * stdin:  one JSON command per line (newline-delimited JSON).
 * stdout: one JSON event per line. Nothing else is ever written to stdout; debug goes to stderr.
 * On start the peer prints {"ev":"ready","id":ID}.
 *
 * Commands. Every command gets exactly one direct reply. If the command has a "tag", the
 * reply carries the same "tag". Commands run one at a time, in order: listen and connect
 * wait for their socket before the next command runs, so replies come in command order.
 * Other event lines (see below) carry no tag and may come between replies.
 *   {"op":"listen","port":0,"stream":OPTS}
 *       Listen on 127.0.0.1:port (port defaults to 0). Each accepted socket gets
 *       stream = sb.createStream(OPTS), then sock.pipe(stream).pipe(sock).
 *       Reply {"ev":"listening","port":P}. Each accepted connection prints {"ev":"accepted","conn":N}.
 *   {"op":"connect","port":P,"stream":OPTS}
 *       Dial 127.0.0.1:P. When TCP is up, reply {"ev":"connected","conn":N}, then create
 *       the stream and pipe it as above. A failed dial prints {"ev":"error","conn":N,...},
 *       then replies {"ev":"cmdError","op":"connect","conn":N,"message":M}, then {"ev":"close","conn":N}.
 *   {"op":"set","key":K,"value":V}          model only: sb.set(K,V); reply {"ev":"ok"}
 *   {"op":"emit","event":E,"args":[...]}    events only: sb.emit(E,...args); reply {"ev":"ok"}
 *   {"op":"on","event":E}                   events only: add a listener; reply {"ev":"ok"}.
 *       Each call of the listener prints {"ev":"event","event":E,"args":[...]}.
 *   {"op":"dump"}  reply {"ev":"state","json":J,"keys":K,"clock":sb.sources,"history":sb.history()}
 *       with J = sb.toJSON() and K = sb.keys() for model, and J = K = null for events.
 *   {"op":"end","conn":N}      stream.end() on that connection's stream; reply {"ev":"ok"}
 *   {"op":"destroy","conn":N}  sock.destroy() on that connection's socket; reply {"ev":"ok"}
 *   {"op":"trust","pem":P}   signed mode only: keys[createId of P] = P (P is the PEM text);
 *       reply {"ev":"ok","id":ID}
 *   {"op":"exit"}  reply {"ev":"ok"}, close everything, and exit 0. The peer also exits 0 when stdin ends.
 *   A command that cannot be done (bad JSON, unknown op, unknown conn, wrong type, throws)
 *   gets the reply {"ev":"cmdError","op":OP,"message":M} instead.
 *
 * OPTS is passed to createStream as given, for example {"writable":false,"sendClock":true},
 * {"tail":false} or {"meta":"hi"}. A missing OPTS or {} means the default. Each connection gets
 * its own deep copy, because createStream may change the object it is given.
 *
 * Connections, accepted or dialled, are numbered 1,2,3,... in the order they are created.
 * An accepted connection is numbered on accept. A dialled one is numbered when "connect" is
 * run. Events printed for connection N:
 *   {"ev":"header","conn":N,"header":H}   stream 'header' (H is the peer's header object)
 *   {"ev":"syncSent","conn":N}            stream 'syncSent'
 *   {"ev":"syncRecieved","conn":N}        stream 'syncRecieved' (the spelling is scuttlebutt's)
 *   {"ev":"sync","conn":N}                stream 'sync'
 *   {"ev":"streamEnd","conn":N}           stream 'end' (our output side ended)
 *   {"ev":"close","conn":N}               socket 'close'
 *   {"ev":"error","conn":N,"message":M}   stream 'error' or socket 'error'; M = String(err && err.message)
 *       (an invalid peer header gives the message "undefined")
 * Events on the scuttlebutt itself:
 *   {"ev":"change","key":K,"value":V}     model 'change' (an undefined value is printed as null)
 *   {"ev":"old_data","update":U}          'old_data' (a stale or duplicate update was dropped)
 *   {"ev":"unverified_data","update":U}   'unverified_data' (signed mode: a signature did not verify)
 *   {"ev":"sbError","message":M}          'error' on the scuttlebutt (a verify callback error)
 *
 * Notes:
 * - Sockets use allowHalfOpen:true. Our write side ends only when the scuttlebutt stream
 *   ends, as scuttlebutt does on its own (for example tail:false, or after the peer's FIN).
 * - With {"writable":false} (and no "clock" option) a readable stream runs start() inside
 *   createStream. Its first 'header'/'syncSent'/'sync' events fire before any listener can
 *   be attached, so they are NOT printed. A later header from the peer prints them normally.
 * - Any stream 'error' (an invalid header, or a line that is not JSON) breaks the piping, as
 *   Node's pipe() does on error: the stream's output is no longer written to the socket (and
 *   will not end it), and the socket is paused, so later TCP chunks are not read. Lines in the
 *   same chunk as the bad one are still parsed. The peer's FIN may or may not still end the
 *   stream (timing), and a close from the other side may go unnoticed. Treat the connection
 *   as dead after an error and "destroy" it (that prints "close").
 */

const { out, withTag, drive } = require('./lib/driver')

const net = require('net')

function parseArgs (argv) {
  const o = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--type') o.type = argv[++i]
    else if (a === '--id') o.id = argv[++i]
    else if (a === '--private') o.private = argv[++i]
    else if (a === '--public') o.public = argv[++i]
    else if (a === '--trust') (o.trust = o.trust || []).push(argv[++i])
    else die('unknown argument: ' + a)
  }
  if (o.type !== 'model' && o.type !== 'events') die('--type must be model or events')
  o.signed = o.private !== undefined || o.public !== undefined
  if (o.signed) {
    if (!o.private || !o.public) die('--private and --public go together')
    if (o.id !== undefined) die('--id cannot be given in signed mode')
  } else if (o.id === undefined || o.id === '') die('--id is required')
  return o
}

function die (msg) {
  process.stderr.write('sb-peer: ' + msg + '\n')
  process.exit(2)
}

function debug () {
  if (process.env.SB_PEER_DEBUG) {
    process.stderr.write('sb-peer: ' + Array.prototype.join.call(arguments, ' ') + '\n')
  }
}

const args = parseArgs(process.argv.slice(2))
const Ctor = args.type === 'model' ? require('scuttlebutt/model') : require('scuttlebutt/events')
const keys = {}
let security = null
if (args.signed) {
  const fs = require('fs')
  const crypto = require('crypto')
  const idOf = function (pem) { return crypto.createHash('sha1').update(pem).digest('base64') }
  const PRIVATE = fs.readFileSync(args.private)
  const PUBLIC = fs.readFileSync(args.public)
  security = require('scuttlebutt/security')(keys, PRIVATE, PUBLIC)
  security.idOf = idOf
  keys[security.createId()] = PUBLIC
  for (const f of args.trust || []) {
    const pem = fs.readFileSync(f)
    keys[idOf(pem)] = pem
  }
}
const sb = security ? new Ctor(security) : new Ctor(args.id)
args.id = sb.id

// Events on the scuttlebutt instance. 'old_data' is emitted with the base EventEmitter
// emit, so plain .on() works for both types.
sb.on('old_data', function (update) { out({ ev: 'old_data', update: update }) })
sb.on('unverified_data', function (update) { out({ ev: 'unverified_data', update: update }) })
sb.on('error', function (err) { out({ ev: 'sbError', message: String(err && err.message) }) })
if (args.type === 'model') {
  sb.on('change', function (key, value) {
    out({ ev: 'change', key: key, value: value === undefined ? null : value })
  })
}

const conns = new Map() // N -> {sock, stream}
const servers = []
let nextConn = 1

function cloneOpts (opts) {
  if (opts === undefined || opts === null) return {}
  return JSON.parse(JSON.stringify(opts))
}

function attachStream (n, sock, opts) {
  const c = conns.get(n)
  const stream = sb.createStream(cloneOpts(opts))
  c.stream = stream
  stream.on('header', function (h) { out({ ev: 'header', conn: n, header: h }) })
  stream.on('sync', function () { out({ ev: 'sync', conn: n }) })
  stream.on('syncSent', function () { out({ ev: 'syncSent', conn: n }) })
  stream.on('syncRecieved', function () { out({ ev: 'syncRecieved', conn: n }) })
  stream.on('end', function () { out({ ev: 'streamEnd', conn: n }) })
  stream.on('error', function (err) {
    out({ ev: 'error', conn: n, message: String(err && err.message) })
  })
  sock.pipe(stream).pipe(sock)
}

function watchSocket (n, sock) {
  sock.on('error', function (err) {
    out({ ev: 'error', conn: n, message: String(err && err.message) })
  })
  sock.on('close', function () {
    debug('conn', n, 'closed')
    out({ ev: 'close', conn: n })
  })
}

function requireType (t, op) {
  if (args.type !== t) throw new Error(op + ' needs --type ' + t)
}

function getConn (cmd) {
  const c = conns.get(cmd.conn)
  if (!c) throw new Error('unknown conn ' + JSON.stringify(cmd.conn))
  return c
}


const handlers = {
  listen: function (cmd, reply) {
    const server = net.createServer({ allowHalfOpen: true }, function (sock) {
      const n = nextConn++
      conns.set(n, { sock: sock, stream: null })
      watchSocket(n, sock)
      out({ ev: 'accepted', conn: n })
      attachStream(n, sock, cmd.stream)
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
    const sock = net.connect({ host: '127.0.0.1', port: cmd.port, allowHalfOpen: true })
    conns.set(n, { sock: sock, stream: null })
    watchSocket(n, sock)
    const onFail = function (err) {
      reply({ ev: 'cmdError', op: 'connect', conn: n, message: String(err && err.message) })
    }
    sock.once('error', onFail)
    sock.once('connect', function () {
      sock.removeListener('error', onFail)
      reply({ ev: 'connected', conn: n })
      attachStream(n, sock, cmd.stream)
    })
    return 'async'
  },

  set: function (cmd) {
    requireType('model', 'set')
    sb.set(cmd.key, cmd.value)
    return { ev: 'ok' }
  },

  emit: function (cmd) {
    requireType('events', 'emit')
    const a = Array.isArray(cmd.args) ? cmd.args : []
    sb.emit.apply(sb, [cmd.event].concat(a))
    return { ev: 'ok' }
  },

  on: function (cmd) {
    requireType('events', 'on')
    const e = cmd.event
    sb.on(e, function () {
      out({ ev: 'event', event: e, args: Array.prototype.slice.call(arguments) })
    })
    return { ev: 'ok' }
  },

  dump: function () {
    const isModel = args.type === 'model'
    return {
      ev: 'state',
      json: isModel ? sb.toJSON() : null,
      keys: isModel ? sb.keys() : null,
      clock: sb.sources,
      history: sb.history()
    }
  },

  trust: function (cmd) {
    if (!security) throw new Error('trust needs signed mode')
    if (typeof cmd.pem !== 'string') throw new Error('trust needs a pem string')
    const id = security.idOf(cmd.pem)
    keys[id] = cmd.pem
    return { ev: 'ok', id: id }
  },

  end: function (cmd) {
    const c = getConn(cmd)
    if (!c.stream) throw new Error('conn ' + cmd.conn + ' has no stream yet')
    c.stream.end()
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
  for (const s of servers) { try { s.close() } catch (e) {} }
  for (const c of conns.values()) { try { c.sock.destroy() } catch (e) {} }
})

out({ ev: 'ready', id: args.id })
