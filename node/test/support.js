'use strict'
// Shared fixtures: the courier-testkit binary and the RabbitMQ URL.
const { spawn } = require('node:child_process')
const { createInterface } = require('node:readline')
const os = require('node:os')
const path = require('node:path')

function testkitBinary() {
  if (process.env.COURIER_TESTKIT) return process.env.COURIER_TESTKIT
  const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/courier/target')
  return path.join(target, 'debug', 'courier-testkit')
}

/** Starts a testkit; it exits when we close its stdin, so it cannot outlive the tests. */
async function startTestkit(upstreams = 3) {
  const proc = spawn(testkitBinary(), ['--upstreams', String(upstreams)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout })
    rl.once('line', (l) => { rl.close(); resolve(l) })
    proc.once('error', reject)
    proc.once('exit', (code) => reject(new Error(`courier-testkit exited with ${code}`)))
  })
  const info = JSON.parse(line)
  const send = async (method, p, body) => {
    const res = await fetch(info.control + p, { method, body: body === undefined ? undefined : JSON.stringify(body) })
    if (!res.ok) throw new Error(`testkit ${method} ${p}: ${res.status} ${await res.text()}`)
    const text = await res.text()
    return text ? JSON.parse(text) : null
  }
  const otlp = async (method, p) => {
    const res = await fetch(info.otlp + p, { method })
    if (!res.ok) throw new Error(`testkit OTLP ${method} ${p}: ${res.status} ${await res.text()}`)
    const text = await res.text()
    return text ? JSON.parse(text) : null
  }
  return {
    urls: info.upstreams,
    /** The OTLP/HTTP receiver: `url` as OTEL_EXPORTER_OTLP_ENDPOINT takes it; what it received, as OTLP JSON. */
    otlp: {
      url: info.otlp,
      spans: () => otlp('GET', '/spans'),
      metrics: () => otlp('GET', '/metrics'),
      reset: () => otlp('POST', '/reset'),
    },
    /** HTTPS upstreams by name (`tls.urls.mtls`, `tls12`, `expired`, ...) and their PKI directory. */
    tls: info.tls,
    behave: (i, behavior) => send('PUT', `/upstreams/${i}/behavior`, behavior),
    requests: (i) => send('GET', `/upstreams/${i}/requests`),
    stop: (i) => send('POST', `/upstreams/${i}/stop`),
    reset: () => send('POST', '/reset'),
    /** A TCP proxy to the host and port of `url`: `proxy.url(u)` is `u` through it. */
    proxy: async (url) => {
      const target = new URL(url)
      const made = await send('POST', '/proxies', { target: `${target.hostname}:${target.port}` })
      return {
        url: (u) => { const via = new URL(u); via.host = made.address; return via.toString() },
        cut: () => send('POST', `/proxies/${made.index}/cut`),
        /** Faults on every connection from now on (`{ blackhole: true }`, `latency_ms`, ...); `{}` lifts them. */
        faults: (faults) => send('PUT', `/proxies/${made.index}/faults`, { latency_ms: 0, bandwidth_bytes_per_sec: 0, blackhole: false, ...faults }),
        accepted: async () => (await send('GET', `/proxies/${made.index}`)).accepted,
      }
    },
    close: () => new Promise((resolve) => { proc.once('exit', resolve); proc.stdin.end() }),
  }
}

const amqpUrl = process.env.COURIER_AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f'

module.exports = { startTestkit, amqpUrl }
