#!/usr/bin/env node
'use strict'
/*
 * blobs-store.js: the blob store of ssb-server 16 (npm ssb-blobs@1.2.2 create.js, which is
 * npm multiblob with sha256 and &-sigil ids), driven over stdin/stdout for the Go tests of
 * ssb/blobs. The Go tests rely on this file's behaviour; keep it in step with this comment.
 *
 * stdin: one JSON command per line. stdout: one JSON object per line, nothing else. On start
 * the script prints {"ev":"ready"}. Every command gets exactly one reply carrying the
 * command's "tag"; a command that fails or is unknown gets {"ev":"cmdError","op":OP,
 * "message":M}. The script exits when stdin ends and every command has been answered. Bytes travel as base64 ("b64"). DIR is a
 * blobs folder (<data>/blobs, as ssb-blobs uses it); one store is made per DIR and reused.
 *
 *   {"op":"add","dir":DIR,"b64":B,"expected":ID?}  add; reply {"ev":"add","id":ID,"path":P}
 *                                                   with P = the store's resolve(ID)
 *   {"op":"get","dir":DIR,"id":ID}                  reply {"ev":"get","b64":B}
 *   {"op":"has","dir":DIR,"id":ID}                  reply {"ev":"has","has":BOOL}
 *   {"op":"size","dir":DIR,"id":ID}                 reply {"ev":"size","size":N|null}
 *   {"op":"ls","dir":DIR}                           ls({long:true}); reply {"ev":"ls","items":[{id,size}]}
 *   {"op":"path","dir":DIR,"id":ID}                 reply {"ev":"path","path":P}
 */
const pull = require('pull-stream')
const create = require('ssb-blobs/create')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const stores = new Map()
const store = (dir) => {
  if (!stores.has(dir)) stores.set(dir, create(dir))
  return stores.get(dir)
}

const ops = {
  add (cmd, cb) {
    const b = store(cmd.dir)
    pull(
      pull.values([Buffer.from(cmd.b64, 'base64')]),
      b.add(cmd.expected || null, (err, id) => {
        if (err) return cb(err)
        cb(null, { ev: 'add', id, path: b.resolve(id) })
      })
    )
  },
  get (cmd, cb) {
    pull(store(cmd.dir).get(cmd.id), pull.collect((err, bufs) => {
      if (err) return cb(err)
      cb(null, { ev: 'get', b64: Buffer.concat(bufs).toString('base64') })
    }))
  },
  has (cmd, cb) {
    store(cmd.dir).has(cmd.id, (err, has) => cb(err, { ev: 'has', has }))
  },
  size (cmd, cb) {
    store(cmd.dir).size(cmd.id, (err, size) => cb(err, { ev: 'size', size }))
  },
  ls (cmd, cb) {
    pull(store(cmd.dir).ls({ long: true, live: false }), pull.collect((err, items) => {
      if (err) return cb(err)
      cb(null, { ev: 'ls', items: items.map((m) => ({ id: m.id, size: m.size })) })
    }))
  },
  path (cmd, cb) {
    cb(null, { ev: 'path', path: store(cmd.dir).resolve(cmd.id) })
  }
}

let buf = ''
let pending = 0
let ended = false
const maybeExit = () => { if (ended && pending === 0) process.exit(0) }
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buf += chunk
  let i
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i)
    buf = buf.slice(i + 1)
    if (line.trim() === '') continue
    let cmd = {}
    let answered = false
    pending++
    const reply = (err, r) => {
      if (answered) return
      answered = true
      if (err) r = { ev: 'cmdError', op: cmd.op, message: String(err && err.stack || err) }
      r.tag = cmd.tag
      out(r)
      pending--
      maybeExit()
    }
    try {
      cmd = JSON.parse(line)
      const op = ops[cmd.op]
      if (!op) throw new Error('unknown op ' + cmd.op)
      op(cmd, reply)
    } catch (err) {
      reply(err)
    }
  }
})
process.stdin.on('end', () => { ended = true; maybeExit() })
out({ ev: 'ready' })
