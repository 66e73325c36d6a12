#!/usr/bin/env node
'use strict'
/*
 * ssb-message.js: npm ssb-validate@4.1.4 and ssb-keys@8.5.0 driven over stdin/stdout, for the
 * Go tests of ssb/message and ssb/keys. The Go tests rely on this file's behaviour; keep it in
 * step with this comment.
 *
 * stdin:  one JSON command per line. stdout: one JSON object per line, nothing else (debug goes
 * to stderr). On start the script prints {"ev":"ready"}. Every command gets exactly one reply,
 * carrying the command's "tag"; a command that throws or is unknown gets
 * {"ev":"cmdError","op":OP,"message":M}. The script exits when stdin ends.
 *
 * Bytes travel as base64 ("b64" fields) so that any byte string, and any JS string (lone
 * surrogates included), crosses the pipe intact: JSON text goes in as the base64 of its bytes
 * and is decoded as the transport does, Buffer#toString('utf8') then JSON.parse.
 *
 *   {"op":"stringify","b64":B}
 *       v = JSON.parse(text). Reply {"ev":"stringify","ok":true,"pretty":B,"compact":B,"id":ID}
 *       with pretty = JSON.stringify(v, null, 2), compact = JSON.stringify(v) (as UTF-8, base64)
 *       and ID = ssb-validate id(v); or {"ev":"stringify","ok":false,"error":M} if JSON.parse throws.
 *   {"op":"validate","b64":B,"state":S,"hmacKey":K,"ooo":false}
 *       msg = JSON.parse(text). Without ooo: ssb-validate append() with state S ({id,sequence} of
 *       the feed's latest message, or null) as the feed state of msg.author, as
 *       ssb-validate/test/data.js does. With ooo: checkInvalidOOO(msg, K). K is a base64 string
 *       or null. Reply {"ev":"validate","ok":BOOL,"error":M|null,"fatal":BOOL,"id":ID}.
 *   {"op":"create","seed":B | "secret":PATH,"state":S,"hmacKey":K,"content":B,"timestamp":T}
 *       keys = ssb-keys generate("ed25519", 32-byte seed) or loadSync(PATH); content =
 *       JSON.parse(text of B); msg = ssb-validate create(S, keys, K, content, T). Reply
 *       {"ev":"create","msg":B,"id":ID} with msg as JSON.stringify(msg) (UTF-8, base64).
 *   {"op":"keys","seed":STRING}       ssb-keys generate("ed25519", STRING); reply {"ev":"keys","keys":KEYS}
 *   {"op":"loadSecret","path":P}      ssb-keys loadSync(P); reply {"ev":"keys","keys":KEYS} (cmdError if unreadable)
 *   {"op":"createSecret","path":P}    ssb-keys createSync(P); reply {"ev":"keys","keys":KEYS}
 */
const v = require('ssb-validate')
const ssbKeys = require('ssb-keys')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64')
const text = (b) => Buffer.from(b, 'base64').toString('utf8')

function feedState (s) {
  return s ? { id: s.id, sequence: s.sequence, timestamp: null, queue: [] } : null
}

const ops = {
  stringify (cmd) {
    let value
    try {
      value = JSON.parse(text(cmd.b64))
    } catch (err) {
      return { ev: 'stringify', ok: false, error: err.message }
    }
    return {
      ev: 'stringify',
      ok: true,
      pretty: b64(JSON.stringify(value, null, 2)),
      compact: b64(JSON.stringify(value)),
      id: v.id(value)
    }
  },

  validate (cmd) {
    const msg = JSON.parse(text(cmd.b64))
    let err = null
    if (cmd.ooo) {
      err = v.checkInvalidOOO(msg, cmd.hmacKey) || null
    } else {
      const state = v.initial()
      if (msg && typeof msg === 'object') state.feeds[msg.author] = feedState(cmd.state)
      try {
        v.append(state, cmd.hmacKey, msg)
      } catch (e) {
        err = e
      }
    }
    return { ev: 'validate', ok: !err, error: err ? err.message : null, fatal: !!(err && err.fatal), id: v.id(msg) }
  },

  create (cmd) {
    const keys = cmd.secret ? ssbKeys.loadSync(cmd.secret) : ssbKeys.generate('ed25519', Buffer.from(cmd.seed, 'base64'))
    const content = JSON.parse(text(cmd.content))
    const msg = v.create(feedState(cmd.state), keys, cmd.hmacKey, content, cmd.timestamp)
    return { ev: 'create', msg: b64(JSON.stringify(msg)), id: v.id(msg) }
  },

  keys (cmd) {
    return { ev: 'keys', keys: ssbKeys.generate('ed25519', cmd.seed) }
  },

  loadSecret (cmd) {
    const keys = ssbKeys.loadSync(cmd.path)
    if (!keys) throw new Error('ssb-keys could not parse ' + cmd.path)
    return { ev: 'keys', keys }
  },

  createSecret (cmd) {
    return { ev: 'keys', keys: ssbKeys.createSync(cmd.path) }
  }
}

let buf = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buf += chunk
  let i
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i)
    buf = buf.slice(i + 1)
    if (line.trim() === '') continue
    let cmd = {}
    let reply
    try {
      cmd = JSON.parse(line)
      const op = ops[cmd.op]
      if (!op) throw new Error('unknown op ' + cmd.op)
      reply = op(cmd)
    } catch (err) {
      reply = { ev: 'cmdError', op: cmd.op, message: String(err && err.stack || err) }
    }
    reply.tag = cmd.tag
    out(reply)
  }
})
process.stdin.on('end', () => process.exit(0))
out({ ev: 'ready' })
