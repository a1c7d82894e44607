// courier from Node against the libraries a Node service would otherwise use, in one
// process, against one upstream and one broker. Peer and courier rounds alternate; each
// figure is the median over the rounds. Prints one JSON row per workload on stdout
// (bench/peers/run.sh assembles the table); progress goes to stderr.
//
// Usage: node peers.mjs --upstream URL --amqp URL [--rounds N] [--only NAME,...]
// COURIER_NODE_PACKAGE names the courierkit package to load (default: the repository's node/).

import { randomUUID } from 'node:crypto'
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
    only: { type: 'string', default: 'get_c1,get_c64,publish' },
  },
})
const rounds = Number(args.rounds)

const log = (message) => process.stderr.write(`${message}\n`)
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

async function timed(count, run) {
  const start = process.hrtime.bigint()
  await run()
  return count / (Number(process.hrtime.bigint() - start) / 1e9)
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
  for (let round = 1; round <= rounds; round++) {
    for (const [key, run] of Object.entries(contenders)) figures[key].push(await run())
    log(`${workload} round ${round}: ${Object.entries(figures).map(([k, v]) => `${k} ${Math.round(v.at(-1))}/s`).join(', ')}`)
  }
  const perSec = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, median(v)]))
  return { workload, language: 'node', per_sec: perSec, rounds: figures }
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

  const amqplibRound = async () => {
    const connection = await amqplib.connect(args.amqp)
    const channel = await connection.createConfirmChannel()
    const one = () =>
      new Promise((resolve, reject) => {
        channel.publish('', queue, BODY, { persistent: true, mandatory: true }, (err) => (err ? reject(err) : resolve()))
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
      'amqplib ConfirmChannel': amqplibRound,
      courier: courierRound,
    })
  } finally {
    await adminChannel.deleteQueue(queue)
    await admin.close()
  }
}

const workloads = {
  get_c1: () => get(1, 5_000),
  get_c64: () => get(CONCURRENCY, 20_000),
  publish: () => publish(10_000),
}

for (const name of args.only.split(',')) {
  process.stdout.write(`${JSON.stringify(await workloads[name]())}\n`)
}
