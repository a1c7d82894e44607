'use strict'
// courier for Node: options objects, async iterators and Buffers over the native core.
// Behaviour (routing, deadlines, confirms, errors) lives in the Rust core; this file
// only shapes arguments and results. Errors are `Error`s with a stable `code`
// (`COURIER_TIMEOUT`, ...), plus `field`/`reason` for `COURIER_CONFIG`.

const diagnosticsChannel = require('node:diagnostics_channel')
const native = require('./native.js')
const args = require('./args.js')
const { TraceContext } = native

// The host's OpenTelemetry context, the parent of calls given no `trace`. The API package
// is optional: required on first use, once; `null` when it is not installed.
let otel

function hostCarrier() {
  if (otel === undefined) {
    try {
      otel = require('@opentelemetry/api')
    } catch {
      otel = null
    }
  }
  if (otel === null) return undefined
  const active = otel.context.active()
  const span = otel.trace.getSpanContext(active)
  if (span === undefined || !otel.trace.isSpanContextValid(span)) return undefined
  const carrier = {}
  // The application's propagators (W3C, baggage, vendors' headers) when registered; the
  // default one injects nothing, so then the traceparent is built from the span itself.
  otel.propagation.inject(active, carrier)
  if (carrier.traceparent === undefined) {
    const flags = (span.traceFlags & 0xff).toString(16).padStart(2, '0')
    carrier.traceparent = `00-${span.traceId}-${span.spanId}-${flags}`
    const state = span.traceState?.serialize()
    if (state) carrier.tracestate = state
  }
  return carrier
}

/** The `trace` the native layer takes: the caller's (as a carrier), else the host's. Read
 * synchronously at the call, so each async context keeps its own parent. */
function parentTrace(trace) {
  if (trace == null) return hostCarrier()
  return trace instanceof TraceContext ? trace.toCarrier() : args.stringMap('trace', trace)
}

function configJson(config) {
  if (config == null) throw args.configError('config', `expected an object, got ${config === null ? 'null' : 'undefined'}`)
  return JSON.stringify(args.options('config', config))
}

/** Runs `start(token)`, a native call that takes an optional `CancelToken`, under
 * `signal` (an AbortSignal or undefined): rejects at once with the signal's reason when it
 * aborts, like `fetch`, and cancels the token, which drops the Rust future on core's
 * runtime (a request forgets its reply, a `next` leaves its delivery for the next call, a
 * publish stops waiting for its confirm). Its own late rejection is ignored. */
function abortable(signal, start) {
  if (signal == null) return start(undefined)
  if (!(signal instanceof AbortSignal)) {
    throw args.configError('signal', `expected an AbortSignal, got ${typeof signal}`)
  }
  signal.throwIfAborted()
  const token = new native.CancelToken()
  const pending = start(token)
  return new Promise((resolve, reject) => {
    const onAbort = () => { token.cancel(); reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    pending.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v) },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e) },
    )
  })
}

/** A completed exchange. Only `status` is read at once: every other field is a read
 * across napi (measured at several hundred ns each, the trace carrier more), which a
 * caller that only checks the status should not pay for on every call. */
class Response {
  #native
  #trace
  constructor(n) {
    this.#native = n
    this.status = n.status
  }
  /** Attempts made; 1 when the first attempt answered. */
  get attempts() { return this.#native.attempts }
  /** Base URL of the endpoint that answered, credentials redacted. */
  get endpoint() { return this.#native.endpoint }
  /** The Idempotency-Key every attempt sent; null when none was sent. */
  get idempotencyKey() { return this.#native.idempotencyKey ?? null }
  /** The trace carrier the answered attempt sent (the same object on every read). */
  get trace() { return (this.#trace ??= this.#native.trace) }
  /** What `JSON.stringify` writes: the fields a Response had as plain properties. */
  toJSON() {
    return { status: this.status, attempts: this.attempts, endpoint: this.endpoint, idempotencyKey: this.idempotencyKey, trace: this.trace }
  }
  /** The context the answered attempt sent, as a TraceContext. */
  get traceContext() { return this.#native.traceContext }
  /** Lowercase names; repeated headers joined with ", ". */
  get headers() { return this.#native.headers }
  get body() { return this.#native.body }
  text() { return this.body.toString('utf8') }
  json() { return JSON.parse(this.text()) }
}

/** A confirmed publish, read from the native receipt on demand (`NativeReceipt` says
 * why). */
class Receipt {
  #native
  #trace
  constructor(n) { this.#native = n }
  get messageId() { return this.#native.messageId }
  /** The context the message carries, as a carrier (the same object on every read). */
  get trace() { return (this.#trace ??= this.#native.trace) }
  /** The same context as a TraceContext. */
  get traceContext() { return this.#native.traceContext }
  /** What `JSON.stringify` writes: the fields a receipt had as plain properties. */
  toJSON() { return { messageId: this.messageId, trace: this.trace, traceContext: this.traceContext } }
}

class Client {
  #native
  constructor(config, native_ = undefined) {
    this.#native = native_ ?? new native.NativeClient(configJson(config))
  }

  /** Loads a `.toml` or JSON config file. */
  static fromFile(path) { return new Client(undefined, native.NativeClient.fromFile(args.string('path', path))) }

  /** `opts.method`, `opts.target` and `opts.path` plus the verbs' options. */
  async call(opts) {
    opts = args.options('options', opts)
    return this.#send(opts.method, opts.target, opts.path, opts)
  }

  async #send(method, target, path, opts) {
    opts = args.options('options', opts)
    const headers = args.entries('headers', opts.headers) ?? []
    let body = opts.body
    if (opts.json !== undefined) {
      if (body != null) throw args.configError('json', 'pass body or json, not both')
      body = JSON.stringify(opts.json)
      if (!headers.some(([k]) => k.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json'])
    }
    const request = {
      method: args.string('method', method),
      target: args.string('target', target),
      path: args.optString('path', path),
      headers,
      query: args.entries('query', opts.query, true),
      body: args.body('body', body),
      deadlineMs: args.optNumber('deadline_ms', opts.deadlineMs),
      timeoutMs: args.optNumber('timeout_ms', opts.timeoutMs),
      idempotencyKey: args.optString('idempotency_key', opts.idempotencyKey),
      idempotent: args.optBool('idempotent', opts.idempotent),
      version: args.optString('version', opts.version),
      rateKey: args.optString('rate_key', opts.rateKey),
      trace: parentTrace(opts.trace),
    }
    return new Response(await abortable(opts.signal, (token) => this.#native.call(request, token)))
  }

  get(target, path = '', opts = {}) { return this.#send('GET', target, path, opts) }
  head(target, path = '', opts = {}) { return this.#send('HEAD', target, path, opts) }
  options(target, path = '', opts = {}) { return this.#send('OPTIONS', target, path, opts) }
  delete(target, path = '', opts = {}) { return this.#send('DELETE', target, path, opts) }
  post(target, path = '', opts = {}) { return this.#send('POST', target, path, opts) }
  put(target, path = '', opts = {}) { return this.#send('PUT', target, path, opts) }
  patch(target, path = '', opts = {}) { return this.#send('PATCH', target, path, opts) }

  /** Replaces the configuration atomically; calls in flight finish under the old one. */
  reconfigure(config) { this.#native.reconfigure(configJson(config)) }

  /** Counters per service: `{ services: { [name]: { requests, attempts, retries, ... } } }`. */
  stats() { return JSON.parse(this.#native.statsJson()) }

  /** Later calls reject with COURIER_CLOSED; calls in flight finish. */
  close() { this.#native.close() }
  /** `using client = new Client(...)` closes it at the end of the scope. */
  [Symbol.dispose]() { this.close() }
  /** `await using` works too, like the bus and consumers. */
  async [Symbol.asyncDispose]() { this.close() }
}

/** A received message; `reply()` answers it when it is a request from `serve()`. */
class Delivery {
  #native
  constructor(n) { this.#native = n }
  get body() { return this.#native.body }
  get headers() { return this.#native.headers }
  get messageId() { return this.#native.messageId }
  get correlationId() { return this.#native.correlationId }
  /** Where the reply goes; null unless this is a request. */
  get replyTo() { return this.#native.replyTo }
  get exchange() { return this.#native.exchange }
  get routingKey() { return this.#native.routingKey }
  get redelivered() { return this.#native.redelivered }
  get deliveryCount() { return this.#native.deliveryCount }
  /** Milliseconds left until the message's deadline, 0 once passed; null without one. */
  get remainingMs() { return this.#native.remainingMs }
  /** Whether it was acked, nacked, rejected or forwarded. */
  get isSettled() { return this.#native.isSettled }
  get trace() { return this.#native.trace }
  /** The context the message carried, as a TraceContext. */
  get traceContext() { return this.#native.traceContext }
  async ack() { return this.#native.ack() }
  /** Requeues by default (core's default); `nack(false)` dead-letters. */
  async nack(requeue = undefined) { return this.#native.nack(args.optBool('requeue', requeue)) }
  /** Dead-letters the message. */
  async reject() { return this.#native.reject() }
  /** Rejects with COURIER_CONFIG when this delivery is not a request. */
  /** Publishes the next workflow step (`publish`'s message, without `messageId`: it is
   * derived from this delivery's id and the destination), then acks this delivery;
   * resolves with the next step's receipt. Without `trace`, continues this delivery's. */
  async forward(msg) {
    const message = publishArgs(msg)
    return new Receipt(await abortable(msg.signal, (token) => this.#native.forward(message, token)))
  }

  async reply(body, headers = undefined) {
    return this.#native.reply(args.body('body', body) ?? Buffer.alloc(0), args.stringMap('headers', headers))
  }

  /** Runs `fn(delivery)` and settles the delivery after it, unless `fn` settled it (a
   * forward, a reject): acked when `fn` resolves; when it throws, nacked (`requeue`, by
   * default true) and the error rethrown. Resolves with `fn`'s result. The outcome is
   * core's `Delivery::finish`. */
  async process(fn, opts = {}) {
    if (typeof fn !== 'function') throw args.configError('fn', `expected a function, got ${typeof fn}`)
    const requeue = args.optBool('requeue', args.options('options', opts).requeue)
    let result
    try {
      result = await fn(this)
    } catch (e) {
      await this.#native.finish(false, requeue)
      throw e
    }
    await this.#native.finish(true, requeue)
    return result
  }
}

const delivery = (n) => (n === null ? null : new Delivery(n))

/** Deliveries from `nextBatch`; `ack`, `nack` and `reject` settle the ones not settled yet. */
class Batch {
  #native
  constructor(n) {
    this.#native = n
    this.deliveries = Object.freeze(n.deliveries.map((d) => new Delivery(d)))
  }
  get length() { return this.deliveries.length }
  [Symbol.iterator]() { return this.deliveries[Symbol.iterator]() }
  async ack() { return this.#native.ack() }
  async nack(requeue = undefined) { return this.#native.nack(args.optBool('requeue', requeue)) }
  async reject() { return this.#native.reject() }
}

class Consumer {
  #native
  constructor(n) { this.#native = n }
  /** The next delivery, or null once closed; rejects with COURIER_TIMEOUT after timeoutMs. */
  async next(opts = {}) {
    opts = args.options('options', opts)
    const timeoutMs = args.optNumber('timeout_ms', opts.timeoutMs)
    return delivery(await abortable(opts.signal, (token) => this.#native.next(timeoutMs, token)))
  }
  /** Up to `max` deliveries once `max` came or `timeoutMs` passed (fewer, possibly none); null once closed. */
  async nextBatch(opts) {
    opts = args.options('options', opts)
    const max = args.optNumber('max', opts.max)
    const timeoutMs = args.optNumber('timeout_ms', opts.timeoutMs)
    if (max === undefined) throw args.configError('max', 'is required')
    if (timeoutMs === undefined) throw args.configError('timeout_ms', 'is required')
    const n = await abortable(opts.signal, (token) => this.#native.nextBatch(max, timeoutMs, token))
    return n === null ? null : new Batch(n)
  }
  /** Stops consuming; unacknowledged deliveries return to the queue. */
  async close() { return this.#native.close() }
  /** `await using consumer = await bus.consume(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose]() { return this.close() }
  /** Deliveries until the consumer is closed. Leaving the loop early (`break`, `return`,
   * a throw) closes the consumer: unsettled deliveries return to the queue, so settle
   * each inside the loop. */
  async *[Symbol.asyncIterator]() {
    try {
      for (let d = await this.next(); d !== null; d = await this.next()) yield d
    } finally {
      await this.close()
    }
  }
}


/** A publish's (or a forward's) message as the native module takes it. */
function publishArgs(msg) {
  msg = args.options('message', msg)
  return {
    exchange: args.optString('exchange', msg.exchange) ?? '',
    routingKey: args.string('routing_key', msg.routingKey),
    body: args.body('body', msg.body) ?? Buffer.alloc(0),
    headers: args.stringMap('headers', msg.headers),
    messageId: args.optString('message_id', msg.messageId),
    correlationId: args.optString('correlation_id', msg.correlationId),
    persistent: args.optBool('persistent', msg.persistent),
    trace: parentTrace(msg.trace),
    deadlineMs: args.optNumber('deadline_ms', msg.deadlineMs),
    delayMs: args.optNumber('delay_ms', msg.delayMs),
    ttlMs: args.optNumber('ttl_ms', msg.ttlMs),
  }
}

class Bus {
  #native
  constructor(n) { this.#native = n }

  /** `opts.signal` aborts the wait for the first broker. */
  static async connect(config, opts = {}) {
    const json = configJson(config)
    const { signal } = args.options('options', opts)
    return new Bus(await abortable(signal, (token) => native.NativeBus.connect(json, token)))
  }

  // Every Promise-returning method is async, so a bad argument rejects the Promise like
  // any other failure instead of throwing synchronously.
  async declareQueue(name, opts = {}) {
    opts = args.options('options', opts)
    const queue = args.string('queue', name)
    const options = {
      quorum: args.optBool('quorum', opts.quorum),
      deliveryLimit: args.optNumber('delivery_limit', opts.deliveryLimit),
      deadLetter: args.optBool('dead_letter', opts.deadLetter),
      ttlMs: args.optNumber('ttl_ms', opts.ttlMs),
      retryDelaysMs: args.optNumbers('retry_delays_ms', opts.retryDelaysMs),
    }
    return abortable(opts.signal, (token) => this.#native.declareQueue(queue, options, token))
  }

  /** `kind` defaults to `'topic'` (core's default). */
  async declareExchange(name, kind = undefined, opts = {}) {
    const { signal } = args.options('options', opts)
    const exchange = args.string('exchange', name)
    const exchangeKind = args.optString('kind', kind)
    return abortable(signal, (token) => this.#native.declareExchange(exchange, exchangeKind, token))
  }

  async bind(queue, exchange, routingKey, opts = {}) {
    const { signal } = args.options('options', opts)
    const names = [args.string('queue', queue), args.string('exchange', exchange), args.string('routing_key', routingKey)]
    return abortable(signal, (token) => this.#native.bind(...names, token))
  }

  /** Resolves once the broker confirms, with the message id and the trace context sent
   * (`trace`, a carrier, and `traceContext`). */
  async publish(msg) {
    const message = publishArgs(msg)
    return new Receipt(await abortable(msg.signal, (token) => this.#native.publish(message, token)))
  }

  /** One `Promise.allSettled` entry per message, once all are confirmed or refused. */
  async publishMany(msgs, opts = {}) {
    if (!Array.isArray(msgs)) throw args.configError('messages', 'expected an array of messages')
    const { signal } = args.options('options', opts)
    const messages = msgs.map((m, i) => {
      try {
        return publishArgs(m)
      } catch (e) {
        if (e.code === 'COURIER_CONFIG') throw args.configError(`messages[${i}].${e.field}`, e.reason)
        throw e
      }
    })
    const settled = await abortable(signal, (token) => this.#native.publishMany(messages, token))
    for (const entry of settled) {
      if (entry.status === 'fulfilled') entry.value = new Receipt(entry.value)
    }
    return settled
  }

  async consume(queue, opts = {}) {
    opts = args.options('options', opts)
    const options = {
      prefetch: args.optNumber('prefetch', opts.prefetch),
      dedup: args.optBool('dedup', opts.dedup),
    }
    const name = args.string('queue', queue)
    return new Consumer(await abortable(opts.signal, (token) => this.#native.consume(name, options, token)))
  }

  /** A consumer of RPC requests: each delivery's `reply()` answers its caller. */
  async serve(queue, opts = {}) {
    const { signal } = args.options('options', opts)
    const name = args.string('queue', queue)
    return new Consumer(await abortable(signal, (token) => this.#native.serve(name, token)))
  }

  /** Sends a request and resolves to the reply; rejects with COURIER_TIMEOUT after timeoutMs. */
  async request(req) {
    req = args.options('request', req)
    const request = {
      exchange: args.optString('exchange', req.exchange),
      routingKey: args.string('routing_key', req.routingKey),
      body: args.body('body', req.body) ?? Buffer.alloc(0),
      timeoutMs: args.optNumber('timeout_ms', req.timeoutMs),
      headers: args.stringMap('headers', req.headers),
      trace: parentTrace(req.trace),
    }
    return new Delivery(await abortable(req.signal, (token) => this.#native.request(request, token)))
  }

  /** Counters since connecting: `{ published, confirmed, ..., deduplicated, rpc_in_flight, reconnects }`,
   * snake_case like `client.stats()`: both are the one stats schema every language reports. */
  stats() {
    return JSON.parse(this.#native.statsJson())
  }

  async close() { return this.#native.close() }
  /** `await using bus = await Bus.connect(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose]() { return this.close() }
}

// --- telemetry: core's log records, exported traces and metrics ----------------------

/** Every core log record is published here while the channel has subscribers. */
const LOG_CHANNEL = 'courier:log'
const logChannel = diagnosticsChannel.channel(LOG_CHANNEL)
let logger = null
let loggerFailed = false

function warn(message, code) {
  process.emitWarning(message, { type: 'CourierWarning', code })
}

// Called on the JavaScript thread for each record, queued by the native sink without
// ever blocking core (records are dropped, and counted, when this thread falls behind).
// The sink stays registered: asking whether the channel has subscribers costs less than
// noticing subscriptions, and nothing reaches JavaScript below the level (warn by default).
function deliver(record) {
  Object.freeze(record.fields)
  Object.freeze(record)
  if (logChannel.hasSubscribers) logChannel.publish(record)
  if (logger !== null) {
    try {
      logger(record)
    } catch (e) {
      // A throw here would be an uncaught exception raised from courier's log queue.
      if (!loggerFailed) {
        loggerFailed = true
        warn(`the courier logger threw (later throws are not reported): ${e?.stack ?? e}`, 'COURIER_LOGGER')
      }
    }
  }
}

/** Sends every core log record to `fn` (`null` stops): `{ level, target, message, fields }`. */
function setLogger(fn) {
  if (fn != null && typeof fn !== 'function') {
    throw args.configError('logger', `expected a function or null, got ${fn === null ? 'null' : typeof fn}`)
  }
  logger = fn ?? null
  loggerFailed = false
}

/** The level core records are produced at: 'off', 'error', 'warn' (default), 'info', 'debug', 'trace'. */
function setLogLevel(level) { native.setLogLevel(args.string('level', level)) }

function logLevel() { return native.logLevel() }

/** Replaces the telemetry settings; omitted options take their defaults (nothing exported). */
async function configureTelemetry(opts = {}) {
  opts = args.options('options', opts)
  return native.configureTelemetry({
    tracesEndpoint: args.optString('traces_endpoint', opts.tracesEndpoint),
    metricsEndpoint: args.optString('metrics_endpoint', opts.metricsEndpoint),
    serviceName: args.optString('service_name', opts.serviceName),
    sampler: args.optString('sampler', opts.sampler),
    samplerArg: samplerArg(opts.samplerArg),
    metrics: args.optBool('metrics', opts.metrics),
    metricsIntervalMs: args.optNumber('metrics_interval_ms', opts.metricsIntervalMs),
  })
}

/** OTEL_TRACES_SAMPLER_ARG is text; a ratio may be given as a number. */
function samplerArg(v) {
  if (typeof v === 'number') return String(v)
  return args.optString('sampler_arg', v)
}

/** Exports finished spans and current metric readings now. */
async function flushTelemetry() { return native.flushTelemetry() }

/** The metric readings in the Prometheus text format (empty when metrics are off). */
function metricsText() { return native.metricsText() }

native.setLogSink(deliver)
try {
  native.installTelemetry()
} catch (e) {
  warn(`courier telemetry stays at its defaults (nothing exported): ${e.message}`, e.code)
}

// At exit, what was recorded goes out once: `beforeExit` fires again whenever the loop
// empties, so only the first one flushes (later ones see the flag and return).
// `process.exit()` and fatal signals skip `beforeExit`: await flushTelemetry() first.
let flushedAtExit = false
process.on('beforeExit', () => {
  if (flushedAtExit) return
  flushedAtExit = true
  flushTelemetry().catch((e) => warn(`courier telemetry was not exported at exit: ${e.message}`, e.code))
})

/** The caller's remaining budget (ms) from incoming HTTP headers, or null. */
function deadlineFromHeaders(headers) {
  return native.deadlineFromHeaders(args.stringMap('headers', headers) ?? {})
}

module.exports = {
  Client, Bus, Batch, Consumer, Delivery, Response, TraceContext, deadlineFromHeaders,
  setLogger, setLogLevel, logLevel, configureTelemetry, flushTelemetry, metricsText, LOG_CHANNEL,
}
