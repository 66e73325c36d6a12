#!/usr/bin/env node
'use strict'
/*
 * lan-packet.js: the LAN discovery packets of the JavaScript peers, made and read by their own
 * code, with no network, for the Go tests of ssb/plugins/lan.
 *
 * ssb-local@1.0.0 (ssb-server@16's plugin) runs for real, over the real broadcast-stream@0.2.2,
 * whose UDP socket is replaced by a fake dgram socket: what ssb-local writes is captured, and a
 * packet is handed to broadcast-stream as if it had arrived. Its timers (setInterval) are
 * captured and called on command, and Date.now stands still but for the advance command, so its
 * timing is observed exactly and without waiting. Its address is what secret-stack's getAddress('private') ||
 * getAddress('local') returns: multiserver@3's stringify of net + shs, as ssb-server sets them up.
 * ssb-lan is not installed: its readNormal and writeNormal (ssbc/ssb-lan src/index.ts, MIT) are
 * transcribed below over the ssb-keys and ssb-ref they call.
 *
 * stdin one JSON command per line, stdout one JSON object per line (lib/driver.js). Bytes travel
 * as base64. On start it prints {"ev":"ready"}.
 *
 *   {"op":"init","seed":B,"caps":B,"host":H,"port":P}
 *       Starts ssb-local with config {port: P} for the identity of the 32-byte seed, listening
 *       (net) on H:P. Reply {"ev":"init","id":ID,"bound":PORT,"intervals":[MS…]}: the UDP port
 *       broadcast-stream bound, and the periods of ssb-local's setInterval calls in order
 *       (cleanup, then announce).
 *   {"op":"announce"}
 *       Runs ssb-local's announce timer. Reply {"ev":"sent","packets":[{"data":B,"port":N,
 *       "host":H}…]}: what it sent.
 *   {"op":"announceLan"}
 *       ssb-lan's writeNormal for the same address and identity. Reply as announce.
 *   {"op":"receive","data":B,"address":IP,"port":N}
 *       A packet from IP:N arrives on ssb-local's socket. Reply {"ev":"received","adds":[[DATA,
 *       SOURCE]…],"local":STATUS}: the gossip.add calls it made, and its status.local.
 *   {"op":"receiveLan","data":B}
 *       ssb-lan's readNormal. Reply {"ev":"discovery","found":BOOL,"address":A,"verified":BOOL}.
 *   {"op":"parseAddress","data":STRING}
 *       ssb-ref's parseAddress, as ssb-local calls it on a packet. Reply {"ev":"parsed","addr":
 *       {"host":H,"port":N,"key":ID}|null}.
 *   {"op":"advance","ms":N}
 *       Moves Date.now N ms forward and runs ssb-local's cleanup timer. Reply {"ev":"cleanup",
 *       "removes":[ADDRESS…]}: the gossip.remove calls (ssb-ref's parsed addresses).
 */
const EventEmitter = require('events')
const dgram = require('dgram')
const ssbKeys = require('ssb-keys')
const Ref = require('ssb-ref')
const MultiServer = require('multiserver')
const Net = require('multiserver/plugins/net')
const Shs = require('multiserver/plugins/shs')
const { drive, out } = require('./lib/driver')

const b64 = (b) => Buffer.from(b).toString('base64')
const buf = (s) => Buffer.from(s, 'base64')

// The fake UDP socket broadcast-stream gets from dgram.createSocket.
let socket = null
const sent = []
dgram.createSocket = function (opts) {
  socket = new EventEmitter()
  socket.opts = opts
  socket.bind = function (port) {
    socket.bound = port
    setImmediate(() => socket.emit('listening'))
  }
  socket.setBroadcast = function (on) { socket.broadcast = on }
  socket.send = function (msg, offset, length, port, host) {
    sent.push({ data: b64(msg.slice(offset, offset + length)), port: port, host: host })
  }
  socket.close = function () { socket.emit('close') }
  return socket
}

// ssb-local's timers, called on command.
const intervals = []
global.setInterval = function (fn, ms) {
  intervals.push({ fn: fn, ms: ms })
  return { unref () {}, ref () {} }
}
let offset = 0
const base = Date.now()
Date.now = () => base + offset // frozen: moves only on advance

let keys = null
let caps = null
let address = null
const adds = []
const removes = []
let statusHook = null

function timer (ms) {
  const t = intervals.find((i) => i.ms === ms)
  if (!t) throw new Error('ssb-local has no timer of ' + ms + ' ms')
  return t.fn
}

const ops = {
  init (cmd, reply) {
    keys = ssbKeys.generate('ed25519', buf(cmd.seed))
    caps = buf(cmd.caps)
    const ms = MultiServer([[
      Net({ host: cmd.host, port: cmd.port, scope: ['device', 'local', 'public'] }),
      Shs({ keys: { publicKey: buf(keys.public.replace(/\.ed25519$/, '')), secretKey: buf(keys.private.replace(/\.ed25519$/, '')) }, appKey: caps, auth: () => {} })
    ]])
    const getAddress = (scope) => ms.stringify(scope) || null
    address = getAddress('private') || getAddress('local')
    const server = {
      id: keys.id,
      gossip: {
        add (data, source) { adds.push([data, source]) },
        remove (addr) { removes.push(addr) }
      },
      status: { hook (fn) { statusHook = fn } },
      getAddress: getAddress
    }
    require('ssb-local').init(server, { port: cmd.port })
    setImmediate(() => setImmediate(() => reply({
      ev: 'init', id: keys.id, bound: socket.bound, broadcast: socket.broadcast, intervals: intervals.map((i) => i.ms)
    })))
    return 'async'
  },
  announce () {
    sent.length = 0
    timer(1000)()
    return { ev: 'sent', packets: sent.splice(0) }
  },
  announceLan () {
    // ssb-lan writeNormal
    const ciphertext = ssbKeys.secretBox({ address }, caps)
    const b64sig = ssbKeys.signObj(keys, { address }).signature
    const sig = Buffer.from(b64sig.replace(/\.sig\.ed25519$/, ''), 'base64')
    return { ev: 'sent', packets: [{ data: b64(Buffer.concat([ciphertext, sig])), port: 26830, host: '255.255.255.255' }] }
  },
  receive (cmd) {
    adds.length = 0
    socket.emit('message', buf(cmd.data), { address: cmd.address, port: cmd.port, family: 'IPv4', size: buf(cmd.data).length })
    const st = statusHook ? statusHook(() => ({})) : {}
    return { ev: 'received', adds: adds.splice(0), local: st.local || null }
  },
  receiveLan (cmd) {
    // ssb-lan readNormal
    const b = buf(cmd.data)
    const ciphertext = b.slice(0, b.length - 64)
    const sig = b.slice(b.length - 64, b.length)
    let addr
    try {
      const obj = ssbKeys.secretUnbox(ciphertext, caps)
      addr = obj.address
    } catch (err) {
      return { ev: 'discovery', found: false }
    }
    const peer = Ref.parseAddress(addr)
    if (!peer) return { ev: 'discovery', found: false }
    if (peer.key === keys.id) return { ev: 'discovery', found: false, self: true }
    const obj = { address: addr, signature: sig.toString('base64') + '.sig.ed25519' }
    const verified = ssbKeys.verifyObj({ public: peer.key }, obj)
    return { ev: 'discovery', found: true, address: addr, verified: verified }
  },
  parseAddress (cmd) {
    return { ev: 'parsed', addr: Ref.parseAddress(cmd.data) || null }
  },
  advance (cmd) {
    removes.length = 0
    offset += cmd.ms
    timer(5000)()
    return { ev: 'cleanup', removes: removes.splice(0) }
  }
}

out({ ev: 'ready' })
drive(ops)
