// Memory figures from Node (bench/peers/run.sh memory), each measured in a process of its
// own so one's allocations cannot hide in another's peak:
//
// - unconfirmed: peak RSS added by 10,000 confirmed publishes started at once (256-byte
//   persistent messages, one durable classic queue on the local RabbitMQ), courier's Bus
//   against amqplib's ConfirmChannel doing the same.
// - in flight: peak RSS added by 10,000 GETs in flight at once, each held 2 s by a slow
//   upstream (a node:http server in a process of its own), courier's Client against an
//   undici Pool with as many connections: 10,000 connections either way.
//
// Prints one JSON object per figure on stdout (the same shape as memory.py's).
//
// Usage: node memory.mjs --amqp URL

import { spawn, execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import amqplib from 'amqplib'

const require = createRequire(import.meta.url)
const courier = require(process.env.COURIER_NODE_PACKAGE ?? '../../../node')

const PUBLISHES = 10_000
const IN_FLIGHT = 10_000
const HOLD_MS = 2000
const BODY = Buffer.alloc(256, 'x')

const { values: args } = parseArgs({
  options: { amqp: { type: 'string' }, child: { type: 'string' }, upstream: { type: 'string' } },
})

/** KiB: the current RSS, and the peak so far (ru_maxrss). */
const rss = () => Math.round(process.memoryUsage.rss() / 1024)
const peak = () => process.resourceUsage().maxRSS

async function withQueue(run) {
  const queue = `bench.memory.node.${randomUUID().slice(0, 8)}`
  const conn = await amqplib.connect(args.amqp)
  const ch = await conn.createChannel()
  await ch.assertQueue(queue, { durable: true })
  try {
    return await run(queue)
  } finally {
    await ch.deleteQueue(queue)
    await conn.close()
  }
}

const children = {
  'publish-courier': () => withQueue(async (queue) => {
    const bus = await courier.Bus.connect({ urls: [args.amqp], max_unconfirmed: PUBLISHES })
    await bus.publish({ routingKey: queue, body: BODY })
    const before = rss()
    await Promise.all(Array.from({ length: PUBLISHES }, () => bus.publish({ routingKey: queue, body: BODY })))
    const added = peak() - before
    await bus.close()
    return added
  }),
  'publish-amqplib': () => withQueue(async (queue) => {
    const conn = await amqplib.connect(args.amqp)
    const ch = await conn.createConfirmChannel()
    const publish = () => new Promise((resolve, reject) => {
      ch.sendToQueue(queue, BODY, { persistent: true, mandatory: true }, (err) => (err ? reject(err) : resolve()))
    })
    await publish()
    const before = rss()
    await Promise.all(Array.from({ length: PUBLISHES }, publish))
    const added = peak() - before
    await conn.close()
    return added
  }),
  'http-courier': async () => {
    const slow = { endpoints: [args.upstream], max_concurrency: IN_FLIGHT, deadline_ms: 60_000 }
    const client = new courier.Client({ services: { slow } })
    await client.get('slow', '/')
    const before = rss()
    const responses = await Promise.all(Array.from({ length: IN_FLIGHT }, () => client.get('slow', '/')))
    if (!responses.every((r) => r.status === 200)) throw new Error('a GET failed')
    const added = peak() - before
    client.close()
    return added
  },
  'http-undici': async () => {
    const pool = new Pool(args.upstream, { connections: IN_FLIGHT, headersTimeout: 60_000 })
    const get = async () => {
      const { statusCode, body } = await pool.request({ path: '/', method: 'GET' })
      await body.text()
      return statusCode
    }
    await get()
    const before = rss()
    const statuses = await Promise.all(Array.from({ length: IN_FLIGHT }, get))
    if (!statuses.every((s) => s === 200)) throw new Error('a GET failed')
    const added = peak() - before
    await pool.close()
    return added
  },
}

const SLOW_UPSTREAM = `
const http = require('node:http')
const server = http.createServer((req, res) => {
  setTimeout(() => res.end('ok'), Number(process.argv[1]))
})
server.listen({ host: '127.0.0.1', port: 0, backlog: 16384 }, () => console.log(server.address().port))
`

/** Starts the slow upstream; resolves to its URL and the process. */
function slowUpstream() {
  const server = spawn(process.execPath, ['-e', SLOW_UPSTREAM, String(HOLD_MS)], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.stdout.once('data', (port) => resolve({ url: `http://127.0.0.1:${String(port).trim()}`, server }))
  })
}

function measure(kind, extra = []) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--amqp', args.amqp, '--child', kind, ...extra], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return Number(out.trim().split('\n').at(-1))
}

if (args.child) {
  console.log(await children[args.child]())
} else {
  const publishes = { amqplib: measure('publish-amqplib'), courier: measure('publish-courier') }
  console.log(JSON.stringify({ figure: `peak RSS added by ${PUBLISHES.toLocaleString('en')} unconfirmed publishes, KiB`, language: 'node', values: publishes }))
  const { url, server } = await slowUpstream()
  try {
    const inFlight = {
      undici: measure('http-undici', ['--upstream', url]),
      courier: measure('http-courier', ['--upstream', url]),
    }
    console.log(JSON.stringify({ figure: `peak RSS added by ${IN_FLIGHT.toLocaleString('en')} GETs in flight (${HOLD_MS / 1000} s each), KiB`, language: 'node', values: inFlight }))
  } finally {
    server.kill()
  }
}
