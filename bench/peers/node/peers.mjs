// courier from Node against the libraries a Node service would otherwise use, in one
// process, against one upstream and one broker. Peer and courier rounds alternate; each
// figure is the median over the rounds. Prints one JSON row per workload on stdout
// (bench/peers/run.sh assembles the table); progress goes to stderr.
//
// Usage: node peers.mjs --upstream URL --amqp URL [--rounds N] [--only NAME,...]
// COURIER_NODE_PACKAGE names the courierkit package to load (default: the repository's node/).

import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { Client as UndiciClient, Pool } from 'undici'
import amqplib from 'amqplib'

const require = createRequire(import.meta.url)
const courier = require(process.env.COURIER_NODE_PACKAGE ?? '../../../node')

const BODY = Buffer.alloc(256, 'x')
const IN_FLIGHT = 256
const CONCURRENCY = 64

const { values: args } = parseArgs({
  options: {
    upstream: { type: 'string' },
    amqp: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string', default: 'handoff,get_c1,get_c64,publish' },
  },
})
const rounds = Number(args.rounds)

const log = (message) => process.stderr.write(`${message}\n`)
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

// CPU time so far, in clock ticks (1/100 s on Linux), from /proc: the whole machine's
// busy time, this process's (every thread: courier's workers too) and the JavaScript
// thread's (its thread id is the process id).
function cpuTicks() {
  const own = (path) => {
    const fields = readFileSync(path, 'utf8').split(')').at(-1).trim().split(/\s+/)
    return Number(fields[11]) + Number(fields[12]) // utime, stime
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number)
  const busy = cpu.reduce((a, b) => a + b, 0) - cpu[3] - cpu[4] // all but idle and iowait
  return [busy, own('/proc/self/stat'), own(`/proc/self/task/${process.pid}/stat`)]
}
const TICK_US = 10_000

// The last round's CPU microseconds per operation: `caller` (the JavaScript thread),
// `process` (all threads) and `rest` (the rest of the machine: upstream, broker, noise).
let lastCpu = {}

async function timed(count, run) {
  const before = cpuTicks()
  const start = process.hrtime.bigint()
  await run()
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9
  const [machine, proc, caller] = cpuTicks().map((v, i) => v - before[i])
  const perOp = TICK_US / count
  lastCpu = { caller: caller * perOp, process: proc * perOp, rest: (machine - proc) * perOp }
  return count / elapsed
}

// `count` calls of `call`, `lanes` at a time.
async function lanes(count, width, call) {
  let remaining = count
  const lane = async () => {
    while (remaining > 0) {
      remaining -= 1
      await call()
    }
  }
  await Promise.all(Array.from({ length: width }, lane))
}

// Each contender once per round in the same order; courier is the last key.
async function compare(workload, contenders) {
  const figures = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]))
  const cpu = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]))
  for (let round = 1; round <= rounds; round++) {
    for (const [key, run] of Object.entries(contenders)) {
      figures[key].push(await run())
      cpu[key].push(lastCpu)
    }
    log(`${workload} round ${round}: ${Object.entries(figures).map(([k, v]) => `${k} ${Math.round(v.at(-1))}/s`).join(', ')}`)
  }
  const perSec = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, median(v)]))
  const cpuPerOp = Object.fromEntries(
    Object.entries(cpu).map(([k, runs]) => [
      k,
      Object.fromEntries(Object.keys(runs[0]).map((part) => [part, median(runs.map((r) => r[part]))])),
    ]),
  )
  return { workload, language: 'node', per_sec: perSec, rounds: figures, cpu_us_per_op: cpuPerOp }
}

const courierConfig = () => ({ services: { svc: { endpoints: [args.upstream] } } })

async function get(concurrency, calls) {
  const origin = new URL(args.upstream).origin
  const peer = concurrency === 1 ? new UndiciClient(origin) : new Pool(origin, { connections: concurrency })
  const client = new courier.Client(courierConfig())
  const undiciGet = async () => {
    const { body } = await peer.request({ method: 'GET', path: '/bench' })
    await body.arrayBuffer()
  }
  const courierGet = async () => {
    const response = await client.get('svc', '/bench')
    return response.body
  }
  // Connections open and code paths warm before any round.
  await lanes(concurrency * 8, concurrency, undiciGet)
  await lanes(concurrency * 8, concurrency, courierGet)
  const name = concurrency === 1 ? 'GET, c=1' : `GET, ${concurrency} concurrent`
  const peerName = concurrency === 1 ? 'undici' : `undici Pool(${concurrency})`
  try {
    return await compare(name, {
      [peerName]: () => timed(calls, () => lanes(calls, concurrency, undiciGet)),
      courier: () => timed(calls, () => lanes(calls, concurrency, courierGet)),
    })
  } finally {
    client.close()
    await peer.close()
  }
}

async function publish(messages) {
  const queue = `bench.peers.${randomUUID().slice(0, 8)}`
  const admin = await amqplib.connect(args.amqp)
  const adminChannel = await admin.createChannel()
  await adminChannel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'classic' } })

  // What courier puts on every message besides the body: a message id (courier's is a
  // UUIDv7, as long as this v4) and a W3C traceparent header, made per message.
  const bare = () => ({ persistent: true, mandatory: true })
  const courierProperties = () => ({
    persistent: true,
    mandatory: true,
    messageId: randomUUID(),
    headers: { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` },
  })
  const amqplibRound = async (properties) => {
    const connection = await amqplib.connect(args.amqp)
    const channel = await connection.createConfirmChannel()
    const one = () =>
      new Promise((resolve, reject) => {
        channel.publish('', queue, BODY, properties(), (err) => (err ? reject(err) : resolve()))
      })
    const rate = await timed(messages, () => lanes(messages, IN_FLIGHT, one))
    await connection.close()
    await adminChannel.purgeQueue(queue)
    return rate
  }
  const courierRound = async () => {
    const bus = await courier.Bus.connect({ urls: [args.amqp] })
    const one = () => bus.publish({ routingKey: queue, body: BODY })
    const rate = await timed(messages, () => lanes(messages, IN_FLIGHT, one))
    await bus.close()
    await adminChannel.purgeQueue(queue)
    return rate
  }
  try {
    return await compare(`confirmed publish, ${IN_FLIGHT} in flight`, {
      'amqplib ConfirmChannel': () => amqplibRound(bare),
      "amqplib, courier's properties": () => amqplibRound(courierProperties),
      courier: courierRound,
    })
  } finally {
    await adminChannel.deleteQueue(queue)
    await admin.close()
  }
}

// The floor under every courier call from JavaScript: a call that core refuses (an
// unknown service) still goes to a core worker and back, so its rate is the hand-off
// alone (two thread wake-ups and one Promise), with no network in it. No peer: undici
// never leaves the JavaScript thread.
async function handoff(calls) {
  const client = new courier.Client(courierConfig())
  const refused = async () => {
    try {
      await client.get('unknown', '/bench')
    } catch (e) {
      if (e.kind !== 'config') throw e
    }
  }
  await lanes(1_000, 1, refused)
  try {
    return await compare('hand-off floor (refused in core), c=1', {
      courier: () => timed(calls, () => lanes(calls, 1, refused)),
    })
  } finally {
    client.close()
  }
}

const workloads = {
  handoff: () => handoff(10_000),
  get_c1: () => get(1, 5_000),
  get_c64: () => get(CONCURRENCY, 20_000),
  publish: () => publish(10_000),
}

for (const name of args.only.split(',')) {
  process.stdout.write(`${JSON.stringify(await workloads[name]())}\n`)
}
