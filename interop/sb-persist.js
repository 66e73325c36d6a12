#!/usr/bin/env node
'use strict'
/*
 * sb-persist.js: npm scuttlebutt@5.6.15 persistence (README "Persistence", spec A6), driven over
 * stdin/stdout. The Go tests of scuttlebutt/persist rely on this file's behaviour. Keep it in
 * step with this comment.
 *
 * Usage: node sb-persist.js --type model|events --id ID
 *   model  -> new (require('scuttlebutt/model'))(ID)
 *   events -> new (require('scuttlebutt/events'))(ID)
 *
 * stdin: one JSON command per line. stdout: one JSON object per line, nothing else (debug goes to
 * stderr). On start the script prints {"ev":"ready","id":ID}. Commands run one at a time, in order;
 * each gets exactly one reply, carrying the command's "tag". A command that fails gets
 * {"ev":"cmdError","op":OP,"message":M} instead.
 *   {"op":"set","key":K,"value":V}         model only: sb.set(K,V); reply {"ev":"ok"}
 *   {"op":"emit","event":E,"args":[...]}   events only: sb.emit(E,...args); reply {"ev":"ok"}
 *   {"op":"update","update":U}             sb._update(U): apply U = [change,ts,source] as if a
 *       peer had sent it (this is how a document gets updates from several sources without
 *       sockets); reply {"ev":"ok","applied":BOOL}
 *   {"op":"save","path":P}
 *       sb.createReadStream({tail:false}).pipe(fs.createWriteStream(P)) (the README's way to
 *       persist); reply {"ev":"saved"} once the file is closed.
 *   {"op":"saveLive","path":P}
 *       sb.createReadStream() (tail:true, the default) piped to fs.createWriteStream(P): the file
 *       gets the history, "SYNC", then every later update. Reply {"ev":"ok"}. The file is only
 *       complete after "dispose".
 *   {"op":"dispose"}
 *       sb.dispose(): every stream ends. Reply {"ev":"disposed"} once every saveLive file is closed.
 *   {"op":"load","path":P}
 *       fs.createReadStream(P).pipe(sb.createWriteStream()) (the README's way to load); reply
 *       {"ev":"loaded","sync":BOOL,"errors":[M...],"closed":BOOL} once the write stream has
 *       closed (closed:true); sync tells whether it emitted 'sync' (the file had a "SYNC" line),
 *       errors are the messages of its 'error' events (lines that are not JSON). After an error
 *       Node's pipe stops feeding the write stream, which then never closes: the reply comes
 *       100 ms after the first error, with closed:false (lines in the same chunk as the bad
 *       one are still applied, later chunks are not).
 *   {"op":"dump"}  reply {"ev":"state","json":J,"keys":K,"clock":sb.sources,"history":sb.history()}
 *       with J = sb.toJSON() and K = sb.keys() for model, and J = K = null for events. (A value
 *       that is undefined in JavaScript is printed as null, as JSON.stringify does in arrays.)
 * The script exits when stdin ends.
 */

const { out, drive } = require('./lib/driver')

const fs = require('fs')

function parseArgs (argv) {
  const o = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--type') o.type = argv[++i]
    else if (a === '--id') o.id = argv[++i]
    else die('unknown argument: ' + a)
  }
  if (o.type !== 'model' && o.type !== 'events') die('--type must be model or events')
  if (o.id === undefined || o.id === '') die('--id is required')
  return o
}

function die (msg) {
  process.stderr.write('sb-persist: ' + msg + '\n')
  process.exit(2)
}

const args = parseArgs(process.argv.slice(2))
const Ctor = args.type === 'model' ? require('scuttlebutt/model') : require('scuttlebutt/events')
const sb = new Ctor(args.id)
sb.on('error', function (err) { process.stderr.write('sb-persist: sb error: ' + err + '\n') })

const live = [] // fs write streams of saveLive

function requireType (t, op) {
  if (args.type !== t) throw new Error(op + ' needs --type ' + t)
}

function requirePath (cmd) {
  if (typeof cmd.path !== 'string' || cmd.path === '') throw new Error(cmd.op + ' needs a path')
  return cmd.path
}

const handlers = {
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

  update: function (cmd) {
    if (!Array.isArray(cmd.update)) throw new Error('update needs an array')
    return { ev: 'ok', applied: sb._update(cmd.update) === true }
  },

  save: function (cmd, reply) {
    const ws = fs.createWriteStream(requirePath(cmd))
    ws.on('error', function (err) { reply({ ev: 'cmdError', op: 'save', message: String(err.message) }) })
    ws.on('close', function () { reply({ ev: 'saved' }) })
    sb.createReadStream({ tail: false }).pipe(ws)
    return 'async'
  },

  saveLive: function (cmd, reply) {
    const ws = fs.createWriteStream(requirePath(cmd))
    const entry = { ws: ws, closed: false, waiters: [] }
    live.push(entry)
    ws.on('error', function (err) { process.stderr.write('sb-persist: saveLive: ' + err + '\n') })
    ws.on('close', function () {
      entry.closed = true
      entry.waiters.forEach(function (fn) { fn() })
    })
    ws.on('open', function () { reply({ ev: 'ok' }) })
    sb.createReadStream().pipe(ws)
    return 'async'
  },

  dispose: function (cmd, reply) {
    let waiting = live.filter(function (e) { return !e.closed }).length
    const done = function () { if (--waiting === 0) reply({ ev: 'disposed' }) }
    live.forEach(function (e) { if (!e.closed) e.waiters.push(done) })
    sb.dispose()
    if (waiting === 0) reply({ ev: 'disposed' })
    return 'async'
  },

  load: function (cmd, reply) {
    const ws = sb.createWriteStream()
    let synced = false
    const errors = []
    ws.on('sync', function () { synced = true })
    const broken = function () {
      setTimeout(function () { reply({ ev: 'loaded', sync: synced, errors: errors, closed: false }) }, 100)
    }
    ws.on('error', function (err) { errors.push(String(err && err.message)); broken() })
    ws.on('close', function () { reply({ ev: 'loaded', sync: synced, errors: errors, closed: true }) })
    const rs = fs.createReadStream(requirePath(cmd))
    rs.on('error', function (err) { reply({ ev: 'cmdError', op: 'load', message: String(err.message) }) })

    rs.pipe(ws)
    return 'async'
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
  }
}

drive(handlers, null)

out({ ev: 'ready', id: args.id })
