#!/usr/bin/env node
'use strict'
/*
 * ssb-server-peer.js: runs the real ssb-server@16.0.1 on loopback for the Go
 * tests, never on the LAN, and stops it when stdin ends.
 *
 * Usage: node ssb-server-peer.js CONFIG_JSON
 *   CONFIG_JSON = {"dir": "<empty temp dir>", "port": P, "wsPort": W,
 *                  "caps": "<base64 network key>", "secret": "<ssb-keys secret file text>"}
 * It writes DIR/home/.ssb/config and DIR/home/.ssb/secret, then runs
 * `ssb-server start` with HOME=DIR/home and ssb_config pointing at the
 * config: host 127.0.0.1, LAN discovery and gossip off. Its output goes to
 * stderr; stdout gets {"started":true,"pid":N} and, when it exits,
 * {"exited":CODE}.
 */
const fs = require('fs')
const path = require('path')
const { spawn } = require('child_process')

const cfg = JSON.parse(process.argv[2])
const home = path.join(cfg.dir, 'home')
const ssbDir = path.join(home, '.ssb')
fs.mkdirSync(ssbDir, { recursive: true })
fs.writeFileSync(path.join(ssbDir, 'secret'), cfg.secret, { mode: 0o400 })
const config = {
  path: ssbDir,
  host: '127.0.0.1',
  port: cfg.port,
  ws: { port: cfg.wsPort },
  caps: { shs: cfg.caps },
  local: false,
  gossip: { local: false, pub: false, connections: 0 },
  logging: { level: 'info' }
}
const configFile = path.join(cfg.dir, 'config.json')
fs.writeFileSync(configFile, JSON.stringify(config))

const bin = path.join(__dirname, 'node_modules', 'ssb-server', 'bin.js')
const child = spawn(process.execPath, [bin, 'start'], {
  env: Object.assign({}, process.env, { HOME: home, ssb_config: configFile }),
  stdio: ['ignore', 'pipe', 'pipe']
})
child.stdout.pipe(process.stderr)
child.stderr.pipe(process.stderr)
process.stdout.write(JSON.stringify({ started: true, pid: child.pid }) + '\n')
child.on('exit', (code) => {
  process.stdout.write(JSON.stringify({ exited: code }) + '\n')
  process.exit(0)
})
process.stdin.resume()
process.stdin.on('end', () => child.kill('SIGTERM'))
