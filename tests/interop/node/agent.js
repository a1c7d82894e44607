'use strict'
// The Node interop agent: plays one role (publish, consume or serve) of an interop
// scenario through courier's Node API, exactly as tests/interop/PROTOCOL.md specifies.
// Run it through tests/interop/node/run.sh.
//
// Usage: node agent.js ROLE --bus URL --run ID [options]
//   publish --count N [--duplicates D]
//   consume --expect N --duplicates D
//   serve   --http URL --expect N
//   every role: [--max-ms MS] (default 120000)
const path = require('node:path')
const { Bus, Client, TraceContext } = require(path.join(__dirname, '..', '..', '..', 'node'))

/** Orders worked on at once by publish, consume and serve. */
const IN_FLIGHT = 16
/** How long one `next()` waits before the loop checks again whether it may stop. */
const POLL_MS = 100
/** The consumer's RPC timeout, from the protocol. */
const RPC_TIMEOUT_MS = 10000
/** The consumer's prefetch, from the protocol. */
const PREFETCH = 50

const ROLES = {
  publish: { required: ['count'], optional: { duplicates: 0 }, run: publish },
  consume: { required: ['expect', 'duplicates'], optional: {}, run: consume },
  serve: { required: ['http', 'expect'], optional: {}, run: serve },
}
const NUMERIC = new Set(['count', 'duplicates', 'expect', 'max-ms'])

/** `ROLE --name value ...` into `{ role, opts }`; numeric options become integers. */
function parseArgs(argv) {
  const [role, ...rest] = argv
  const spec = ROLES[role]
  if (!spec) throw new Error(`unknown role ${JSON.stringify(role)}; expected one of ${Object.keys(ROLES).join(', ')}`)
  const known = new Set(['bus', 'run', 'max-ms', ...spec.required, ...Object.keys(spec.optional)])
  const opts = { 'max-ms': 120000, ...spec.optional }
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i].startsWith('--') ? rest[i].slice(2) : null
    if (!known.has(name)) throw new Error(`${role}: unknown option ${rest[i]}`)
    if (i + 1 >= rest.length) throw new Error(`${role}: ${rest[i]} needs a value`)
    const value = rest[i + 1]
    if (NUMERIC.has(name)) {
      if (!/^\d+$/.test(value)) throw new Error(`${role}: --${name} must be a non-negative integer, got ${value}`)
      opts[name] = Number(value)
    } else {
      opts[name] = value
    }
  }
  for (const name of ['bus', 'run', ...spec.required]) {
    if (opts[name] === undefined) throw new Error(`${role}: --${name} is required`)
  }
  if (role === 'publish' && opts.duplicates > opts.count) {
    throw new Error(`publish: --duplicates ${opts.duplicates} exceeds --count ${opts.count}`)
  }
  return { role, opts }
}

/** The run's exchange and queues: the run id keeps runs apart on a shared broker. */
function names(run) {
  return { exchange: `interop.${run}.orders`, orders: `interop.${run}.orders`, pricing: `interop.${run}.pricing` }
}

function emit(line) {
  process.stdout.write(JSON.stringify(line) + '\n')
}

function log(message) {
  process.stderr.write(`agent.js: ${message}\n`)
}

/** Declares the orders exchange, queue and binding; idempotent, so every role may do it. */
async function declareOrders(bus, n) {
  await bus.declareExchange(n.exchange, 'topic')
  await bus.declareQueue(n.orders)
  await bus.bind(n.orders, n.exchange, 'order.placed')
}

/** Runs `fn(0) .. fn(count - 1)` with at most `limit` running at once. */
async function forEachIndex(count, limit, fn) {
  let next = 0
  const worker = async () => {
    while (next < count) await fn(next++)
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker))
}

async function publish(opts) {
  const n = names(opts.run)
  const bus = await Bus.connect({ urls: [opts.bus] })
  await declareOrders(bus, n)
  const traces = new Array(opts.count)
  const send = (i) =>
    bus.publish({
      exchange: n.exchange,
      routingKey: 'order.placed',
      body: JSON.stringify({ order: i }),
      messageId: `order-${i}`,
      trace: traces[i],
    })
  await forEachIndex(opts.count, IN_FLIGHT, async (i) => {
    traces[i] = TraceContext.newRoot()
    await send(i)
    emit({ event: 'published', order: i, message_id: `order-${i}`, trace_id: traces[i].traceId })
  })
  // Only after every first copy is confirmed, so each duplicate queues behind its original.
  await forEachIndex(opts.duplicates, IN_FLIGHT, send)
  emit({ event: 'done', published: opts.count + opts.duplicates })
  await bus.close()
}

/**
 * Hands deliveries to `handle`, at most IN_FLIGHT at once, until `progress.distinct`
 * has reached `expect`, nothing is in flight, and `caughtUp()` holds.
 */
async function drain(consumer, progress, expect, caughtUp, handle) {
  const running = new Set()
  for (;;) {
    if (running.size >= IN_FLIGHT) {
      await Promise.race(running)
      continue
    }
    if (progress.distinct.size >= expect && running.size === 0 && caughtUp()) return
    let d
    try {
      d = await consumer.next({ timeoutMs: POLL_MS })
    } catch (e) {
      if (e.code === 'COURIER_TIMEOUT') continue
      throw e
    }
    if (d === null) throw new Error('the consumer ended before the run did (queue deleted or bus closed)')
    const task = handle(d)
      .catch(async (e) => {
        // Returned to the queue so a transient failure (a lost connection, a slow
        // reply) is retried; the order is reported only once it succeeds.
        log(`message ${d.messageId}: ${e.code ? `${e.code}: ` : ''}${e.message}; returning it to the queue`)
        await d.nack(true).catch((err) => log(`nack ${d.messageId}: ${err.message}`))
      })
      .finally(() => running.delete(task))
    running.add(task)
  }
}

async function consume(opts) {
  const n = names(opts.run)
  const bus = await Bus.connect({ urls: [opts.bus] })
  await declareOrders(bus, n)
  // Declared here too, so requests sent before the server is up are queued, not unroutable.
  await bus.declareQueue(n.pricing)
  const consumer = await bus.consume(n.orders, { prefetch: PREFETCH })
  const progress = { distinct: new Set(), lines: 0 }
  // Dedup skips the publisher's duplicates inside `next()`: stopping before every one
  // was skipped would leave a late copy unseen.
  const skippedAll = () => bus.stats().deduplicated >= opts.duplicates
  await drain(consumer, progress, opts.expect, skippedAll, async (d) => {
    const { order } = JSON.parse(d.body.toString())
    const trace = d.traceContext
    const reply = await bus.request({
      routingKey: n.pricing,
      body: JSON.stringify({ order }),
      trace,
      timeoutMs: RPC_TIMEOUT_MS,
    })
    const { price } = JSON.parse(reply.body.toString())
    await d.ack()
    progress.distinct.add(order)
    progress.lines++
    emit({
      event: 'processed',
      order,
      message_id: d.messageId,
      trace_id: trace.traceId,
      price,
      reply_trace_id: reply.traceContext.traceId,
    })
  })
  emit({ event: 'done', processed: progress.lines })
  await consumer.close()
  await bus.close()
}

async function serve(opts) {
  const n = names(opts.run)
  const client = new Client({ services: { upstream: { endpoints: [opts.http] } } })
  const bus = await Bus.connect({ urls: [opts.bus] })
  await bus.declareQueue(n.pricing)
  const server = await bus.serve(n.pricing)
  const progress = { distinct: new Set(), lines: 0 }
  // Duplicates never reach the server (the consumer skips them): nothing follows the last order.
  await drain(server, progress, opts.expect, () => true, async (req) => {
    const { order } = JSON.parse(req.body.toString())
    const trace = req.traceContext
    const resp = await client.get('upstream', `/price/${order}`, { trace })
    await req.reply(JSON.stringify({ order, price: order * 10 + 1 }))
    await req.ack()
    progress.distinct.add(order)
    progress.lines++
    emit({ event: 'served', order, trace_id: trace.traceId, http_status: resp.status, http_attempts: resp.attempts })
  })
  emit({ event: 'done', served: progress.lines })
  await server.close()
  await bus.close()
  client.close()
}

async function main() {
  let parsed
  try {
    parsed = parseArgs(process.argv.slice(2))
  } catch (e) {
    log(e.message)
    process.exit(2)
  }
  const { role, opts } = parsed
  // The one bound on every wait: whatever hangs, the agent is gone after --max-ms.
  // Not unref'd: it also keeps the process alive while only native work is pending.
  setTimeout(() => {
    log(`${role}: gave up after --max-ms ${opts['max-ms']} ms`)
    process.exit(1)
  }, opts['max-ms'])
  try {
    await ROLES[role].run(opts)
  } catch (e) {
    log(`${role}: ${e.code ? `${e.code}: ` : ''}${e.message}`)
    process.exit(1)
  }
  // The native bus and client may keep the event loop alive; the role is complete.
  process.exit(0)
}

main()
