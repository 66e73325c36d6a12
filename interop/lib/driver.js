'use strict'
/*
 * driver.js: the command loop of the scriptable peers (sb-peer.js, sg-peer.js, sb-persist.js).
 *
 * stdin: one JSON command per line, {"op": ..., "tag"?: ...}; stdout: one JSON object per line.
 * Commands run one at a time, so replies come out in command order even when a handler is
 * asynchronous: a handler returns its reply, or 'async' and calls reply(r) later. A reply
 * carries the command's tag. A line that is not JSON, or an unknown op, is answered with
 * {"ev":"cmdError"}. When stdin ends and the queued commands are done, or on stop(), close()
 * runs, stdout is flushed and the process exits 0.
 */

function out (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function withTag (reply, cmd) {
  if (cmd && Object.prototype.hasOwnProperty.call(cmd, 'tag')) reply.tag = cmd.tag
  return reply
}

function drive (handlers, close) {
  const queue = []
  let busy = false
  let exiting = false

  function stop () {
    if (exiting) return
    exiting = true
    if (close) close()
    // stdout to a pipe is synchronous on Linux; the callback makes sure it has been flushed.
    process.stdout.write('', function () { process.exit(0) })
  }

  function pump () {
    while (!busy && queue.length && !exiting) {
      const line = queue.shift()
      let cmd
      try {
        cmd = JSON.parse(line)
      } catch (err) {
        out({ ev: 'cmdError', op: null, message: 'bad JSON: ' + err.message })
        continue
      }
      const op = cmd && cmd.op
      const h = Object.prototype.hasOwnProperty.call(handlers, op) ? handlers[op] : null
      if (!h) {
        out(withTag({ ev: 'cmdError', op: op === undefined ? null : op, message: 'unknown op' }, cmd))
        continue
      }
      busy = true
      let done = false
      const reply = function (r) {
        if (done) return
        done = true
        out(withTag(r, cmd))
        busy = false
        if (!exiting) setImmediate(pump)
      }
      let r
      try {
        r = h(cmd, reply)
      } catch (err) {
        reply({ ev: 'cmdError', op: op, message: String(err && err.message) })
        continue
      }
      if (r !== 'async') reply(r)
    }
  }

  let buf = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', function (chunk) {
    buf += chunk
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '')
      buf = buf.slice(i + 1)
      if (line.trim() !== '') queue.push(line)
    }
    pump()
  })
  process.stdin.on('end', function () {
    if (buf.trim() !== '') queue.push(buf)
    buf = ''
    pump()
    // Let queued commands (and asynchronous ones) finish, then exit.
    const wait = function () {
      if (exiting) return
      if (busy || queue.length) return setTimeout(wait, 10)
      stop()
    }
    wait()
  })
  process.stdout.on('error', function () { process.exit(0) }) // the reader went away
  return { stop: stop }
}

module.exports = { out: out, withTag: withTag, drive: drive }
