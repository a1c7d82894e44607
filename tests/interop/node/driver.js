'use strict'
// The Node parity driver: runs the cases of tests/interop/cases/*.json through courier's
// Node API and prints one normalised outcome per case (tests/interop/PROTOCOL.md,
// "Parity suite"). Run it through tests/interop/node/run.sh parity.
//
// Usage: node driver.js CASES.json... --testkit-control URL --testkit-upstreams URL,URL,... --amqp URL
//
// One JSON object per line on stdout, {"case": name, "outcome": {...}}; logs on stderr.
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { Bus, Client } = require(path.join(__dirname, '..', '..', '..', 'node'))

/** Bounds every control-API request; the testkit answers in milliseconds. */
const CONTROL_TIMEOUT_MS = 10000

function parseArgs(argv) {
  const files = []
  const opts = {}
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) {
      if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`)
      opts[argv[i].slice(2)] = argv[++i]
    } else {
      files.push(argv[i])
    }
  }
  for (const name of ['testkit-control', 'testkit-upstreams', 'amqp']) {
    if (opts[name] === undefined) throw new Error(`--${name} is required`)
  }
  if (!files.length) throw new Error('no cases files given')
  return { files, opts }
}

class Testkit {
  constructor(control, upstreams) {
    this.control = control
    this.upstreams = upstreams
  }

  async send(method, urlPath, body) {
    const resp = await fetch(this.control + urlPath, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(CONTROL_TIMEOUT_MS),
    })
    const text = await resp.text()
    if (!resp.ok) throw new Error(`testkit ${method} ${urlPath}: ${resp.status} ${text}`)
    return text ? JSON.parse(text) : null
  }

  async totals(count) {
    const totals = []
    for (let i = 0; i < count; i++) totals.push((await this.send('GET', `/upstreams/${i}/requests`)).total)
    return totals
  }
}

/** The case with every placeholder string ({upstream:N}, {memory}, {amqp}) replaced. */
function substitute(value, names) {
  if (typeof value === 'string') return Object.hasOwn(names, value) ? names[value] : value
  if (Array.isArray(value)) return value.map((v) => substitute(v, names))
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, names)]))
  }
  return value
}

/** A courier error as an outcome; anything else is rethrown (a driver error). */
function error(e) {
  if (typeof e?.code !== 'string' || !e.code.startsWith('COURIER_')) throw e
  return e.kind === 'config' ? { error: e.kind, field: e.field } : { error: e.kind }
}

async function runHttp(c, kit) {
  const count = c.upstreams.length
  await kit.send('POST', '/reset')
  for (const [i, behavior] of c.upstreams.entries()) await kit.send('PUT', `/upstreams/${i}/behavior`, behavior)
  const client = new Client(c.config)
  const urls = kit.upstreams.map((u) => u.replace(/\/$/, ''))
  const calls = []
  try {
    for (const call of c.calls) {
      const before = await kit.totals(count)
      let outcome
      try {
        if (call.reconfigure !== undefined) {
          client.reconfigure(call.reconfigure)
          calls.push({ ok: true, requests: before.map(() => 0) })
          continue
        }
        const resp = await client.call({
          method: call.method,
          target: call.target,
          path: call.path ?? '',
          headers: call.headers,
          body: call.body,
          deadlineMs: call.deadline_ms,
          idempotencyKey: call.idempotency_key,
          idempotent: call.idempotent,
          version: call.version,
        })
        const endpoint = resp.endpoint.replace(/\/$/, '')
        const index = urls.indexOf(endpoint)
        outcome = { status: resp.status, attempts: resp.attempts, upstream: index >= 0 ? index : endpoint }
      } catch (e) {
        outcome = error(e)
      }
      const after = await kit.totals(count)
      outcome.requests = after.map((n, i) => n - before[i])
      calls.push(outcome)
    }
  } finally {
    client.close()
  }
  return { calls }
}

/** What a `process_fail` step's handler throws inside `Delivery.process`. */
class HandlerFailed extends Error {}

async function step(bus, kit, s) {
  switch (s.op) {
    case 'testkit':
      // A control-API request (cutting the bus's connection through a proxy); an answer
      // other than 2xx throws, which ends the case as a driver error.
      await kit.send(s.method, s.path, s.body ?? undefined)
      break
    case 'declare_queue':
      await bus.declareQueue(s.queue, { retryDelaysMs: s.retry_delays_ms })
      break
    case 'publish':
      await bus.publish({
        exchange: s.exchange ?? '',
        routingKey: s.routing_key,
        body: s.body ?? '',
        messageId: s.message_id,
        delayMs: s.delay_ms,
        ttlMs: s.ttl_ms,
        headers: s.headers,
      })
      break
    case 'publish_many': {
      const results = await bus.publishMany(s.messages.map((m) => ({
        exchange: m.exchange ?? '', routingKey: m.routing_key, body: m.body ?? '', messageId: m.message_id,
      })))
      return { results: results.map((r) => (r.status === 'fulfilled' ? { ok: true } : error(r.reason))) }
    }
    case 'request':
      await bus.request({ exchange: s.exchange ?? '', routingKey: s.routing_key, body: s.body ?? '', timeoutMs: s.timeout_ms })
      break
    case 'consume': {
      const consumer = await bus.consume(s.queue, { dedup: s.dedup })
      const ids = []
      try {
        for (;;) {
          let d
          try {
            d = await consumer.next({ timeoutMs: s.wait_ms })
          } catch (e) {
            if (e?.code === 'COURIER_TIMEOUT') break
            throw e
          }
          if (d === null) throw new Error('the consumer closed')
          ids.push(d.messageId)
          if (s.settle === 'forward') await d.forward({ routingKey: s.forward_to, body: d.body })
          else if (s.settle === 'process') await d.process(() => {})
          else if (s.settle === 'process_fail') {
            await d.process(() => { throw new HandlerFailed() }, { requeue: false }).catch((e) => {
              if (!(e instanceof HandlerFailed)) throw e
            })
          } else await d[s.settle]()
        }
      } finally {
        await consumer.close()
      }
      return { message_ids: ids }
    }
    case 'consume_batches': {
      const consumer = await bus.consume(s.queue, { dedup: s.dedup })
      const ids = []
      try {
        for (;;) {
          const batch = await consumer.nextBatch({ max: s.max, timeoutMs: s.wait_ms })
          if (batch === null) throw new Error('the consumer closed')
          if (batch.length === 0) break
          ids.push(...[...batch].map((d) => d.messageId))
          await batch[s.settle]()
        }
      } finally {
        await consumer.close()
      }
      return { message_ids: ids }
    }
    case 'stats': {
      const stats = bus.stats()
      return Object.fromEntries(s.fields.map((f) => [f, stats[f]]))
    }
    default:
      throw new Error(`unknown op ${JSON.stringify(s.op)}`)
  }
  return { ok: true }
}

async function runBus(c, kit) {
  const bus = await Bus.connect(c.config)
  const steps = []
  try {
    for (const s of c.steps) {
      try {
        steps.push(await step(bus, kit, s))
      } catch (e) {
        steps.push(error(e))
      }
    }
  } finally {
    await bus.close()
  }
  return { steps }
}

async function runConfig(c) {
  try {
    if (c.target === 'client') new Client(c.config).close()
    else await (await Bus.connect(c.config)).close()
  } catch (e) {
    return error(e)
  }
  return { ok: true }
}

async function main() {
  const { files, opts } = parseArgs(process.argv.slice(2))
  const upstreams = opts['testkit-upstreams'].split(',')
  const kit = new Testkit(opts['testkit-control'], upstreams)
  for (const file of files) {
    for (const raw of JSON.parse(fs.readFileSync(file, 'utf8')).cases) {
      const names = Object.fromEntries(upstreams.map((url, i) => [`{upstream:${i}}`, url]))
      names['{memory}'] = `memory://parity-node-${crypto.randomUUID()}`
      names['{amqp}'] = opts.amqp
      const c = substitute(raw, names)
      let outcome
      try {
        if (c.kind === 'http') outcome = await runHttp(c, kit)
        else if (c.kind === 'bus') outcome = await runBus(c, kit)
        else if (c.kind === 'config') outcome = await runConfig(c)
        else throw new Error(`unknown kind ${JSON.stringify(c.kind)}`)
      } catch (e) {
        outcome = { driver_error: `${e?.name ?? 'Error'}: ${e?.message ?? e}` }
      }
      process.stdout.write(JSON.stringify({ case: raw.name, outcome }) + '\n')
    }
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`driver.js: ${e?.stack ?? e}`)
    process.exit(1)
  },
)
