#!/usr/bin/env node
'use strict'
/*
 * bench-ssb.js: the JavaScript client side of bench/ssbrpc. With the real
 * ssb-client@4.9.0 it measures, against the server given (Go or JS):
 *   - connections per second: connect (handshake), whoami, close, N times;
 *   - reading one feed with createHistoryStream: messages per second.
 * Usage: node bench-ssb.js CONFIG_JSON
 *   CONFIG_JSON = {"host","port","key","caps","keys":{ssb-keys object},
 *                  "feed":"@…","connections":N}
 * Output: one line {"connectsPerSec":X,"messages":M,"readMs":T,"messagesPerSec":Y}.
 */
const ssbClient = require('ssb-client')
const pull = require('pull-stream')

const cfg = JSON.parse(process.argv[2])
const opts = { host: cfg.host, port: cfg.port, key: cfg.key, caps: { shs: cfg.caps }, manifest: { whoami: 'async', createHistoryStream: 'source' } }
const now = () => Number(process.hrtime.bigint()) / 1e6

function connectLoop (n, cb) {
  const t0 = now()
  let i = 0
  const next = () => {
    if (i++ >= n) return cb(null, n / ((now() - t0) / 1000))
    ssbClient(cfg.keys, opts, (err, sbot) => {
      if (err) return cb(err)
      sbot.whoami((err) => {
        if (err) return cb(err)
        sbot.close(true, next)
      })
    })
  }
  next()
}

connectLoop(cfg.connections || 50, (err, connectsPerSec) => {
  if (err) { console.error(err); process.exit(1) }
  ssbClient(cfg.keys, opts, (err, sbot) => {
    if (err) { console.error(err); process.exit(1) }
    const t0 = now()
    pull(sbot.createHistoryStream({ id: cfg.feed }), pull.collect((err, msgs) => {
      if (err) { console.error(err); process.exit(1) }
      const ms = now() - t0
      process.stdout.write(JSON.stringify({ connectsPerSec, messages: msgs.length, readMs: ms, messagesPerSec: msgs.length / (ms / 1000) }) + '\n')
      sbot.close(true, () => process.exit(0))
    }))
  })
})
