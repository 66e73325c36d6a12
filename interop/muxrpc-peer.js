#!/usr/bin/env node
'use strict'
/*
 * muxrpc-peer.js: a JavaScript muxrpc@6.7.3 peer (packet-stream-codec, the
 * versions ssb-server@16 uses) over plain TCP on 127.0.0.1, for the Go tests
 * of ssb/muxrpc. No handshake or encryption: this checks the RPC layer alone.
 *
 * Usage: node muxrpc-peer.js listen | connect PORT
 *   listen: prints {"port":P}, serves the first connection.
 *
 * Methods it serves (its local manifest):
 *   hello(name)   async  -> "hello, NAME!"
 *   count(n)      source -> 0, 1, ..., n-1
 *   fail()        async  -> error "nope"
 *   echo()        duplex -> every item sent back, ends when the input ends
 * Once connected it calls the Go side's methods (its remote manifest) and
 * prints one JSON line per result on stdout:
 *   goHello("js") async, goCount(3) source, goFail() async, goEcho() duplex
 *   fed [1,"two",{"three":3}]
 * then {"done":true}, and it closes the connection once Go does.
 */
const net = require('net')
const MRPC = require('muxrpc')
const pull = require('pull-stream')
const Pushable = require('pull-pushable')
const toPull = require('stream-to-pull-stream')

const localManifest = { hello: 'async', count: 'source', fail: 'async', echo: 'duplex' }
const remoteManifest = { goHello: 'async', goCount: 'source', goFail: 'async', goEcho: 'duplex' }

const api = {
  hello (name, cb) { cb(null, 'hello, ' + name + '!') },
  count (n) { return pull.values([...Array(n).keys()]) },
  fail (cb) { cb(new Error('nope')) },
  echo () {
    const out = Pushable()
    return { source: out, sink: pull.drain((x) => out.push(x), () => out.end()) }
  }
}

const print = (o) => process.stdout.write(JSON.stringify(o) + '\n')

function run (sock) {
  sock.on('error', (err) => console.error('socket:', err.message))
  // The seven-argument form is muxrpc 6's non-legacy API, which has
  // rpc.stream (the curried form is legacy mode, which does not).
  const rpc = MRPC(remoteManifest, localManifest, api, 'go', null, null, false)
  const stream = toPull.duplex(sock)
  pull(stream, rpc.stream, stream)
  rpc.on('closed', () => { print({ closed: true }); process.exit(0) })

  rpc.goHello('js', (err, v) => {
    print({ call: 'goHello', err: err && err.message, result: v })
    pull(rpc.goCount(3), pull.collect((err, xs) => {
      print({ call: 'goCount', err: err && err.message, result: xs })
      rpc.goFail((err, v) => {
        print({ call: 'goFail', err: err && err.message, result: v })
        const d = rpc.goEcho()
        pull(pull.values([1, 'two', { three: 3 }]), d.sink)
        pull(d.source, pull.collect((err, xs) => {
          print({ call: 'goEcho', err: err && err.message, result: xs })
          print({ done: true })
        }))
      })
    }))
  })
}

const [mode, port] = process.argv.slice(2)
if (mode === 'listen') {
  const server = net.createServer((sock) => { server.close(); run(sock) })
  server.listen(0, '127.0.0.1', () => print({ port: server.address().port }))
} else if (mode === 'connect') {
  const sock = net.connect(Number(port), '127.0.0.1', () => run(sock))
} else {
  console.error('usage: muxrpc-peer.js listen | connect PORT')
  process.exit(2)
}
