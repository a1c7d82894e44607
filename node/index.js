'use strict'
// courier for Node: options objects, async iterators and Buffers over the native core.
// Behaviour (routing, deadlines, confirms, errors) lives in the Rust core; this file
// only shapes arguments and results. Errors are `Error`s with a stable `code`
// (`COURIER_TIMEOUT`, ...), plus `field`/`reason` for `COURIER_CONFIG`.

const native = require('./native.js')
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
  return trace instanceof TraceContext ? trace.toCarrier() : trace
}

function configJson(config) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    const err = new TypeError(`config: expected an object, got ${config === null ? 'null' : typeof config}`)
    err.code = 'COURIER_CONFIG'
    err.field = 'config'
    throw err
  }
  return JSON.stringify(config)
}

function pairs(items) {
  if (items == null) return undefined
  const entries = items instanceof Map || Array.isArray(items) ? [...items] : Object.entries(items)
  return entries.map(([k, v]) => [String(k), String(v)])
}

function toBuffer(body) {
  if (body == null) return undefined
  if (typeof body === 'string') return Buffer.from(body)
  if (Buffer.isBuffer(body)) return body
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  if (body instanceof ArrayBuffer) return Buffer.from(body)
  throw new TypeError('body must be a string, Buffer, TypedArray or ArrayBuffer')
}

class Response {
  #native
  constructor(n) {
    this.#native = n
    this.status = n.status
    this.attempts = n.attempts
    this.endpoint = n.endpoint
    this.trace = n.trace
  }
  /** The context the answered attempt sent, as a TraceContext. */
  get traceContext() { return this.#native.traceContext }
  /** Lowercase names; repeated headers joined with ", ". */
  get headers() { return this.#native.headers }
  get body() { return this.#native.body }
  text() { return this.body.toString('utf8') }
  json() { return JSON.parse(this.text()) }
}

class Client {
  #native
  constructor(config, native_ = undefined) {
    this.#native = native_ ?? new native.NativeClient(configJson(config))
  }

  /** Loads a `.toml` or JSON config file. */
  static fromFile(path) { return new Client(undefined, native.NativeClient.fromFile(String(path))) }

  async call(opts) {
    const headers = pairs(opts.headers) ?? []
    let body = opts.body
    if (opts.json !== undefined) {
      if (body != null) throw new TypeError('pass body or json, not both')
      body = JSON.stringify(opts.json)
      if (!headers.some(([k]) => k.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json'])
    }
    const signal = opts.signal
    signal?.throwIfAborted()
    const token = signal ? new native.CancelToken() : undefined
    const pending = this.#native.call({
      method: opts.method,
      target: opts.target,
      path: opts.path,
      headers,
      query: pairs(opts.query),
      body: toBuffer(body),
      deadlineMs: opts.deadlineMs,
      timeoutMs: opts.timeoutMs,
      idempotencyKey: opts.idempotencyKey,
      version: opts.version,
      trace: parentTrace(opts.trace),
    }, token)
    if (!signal) return new Response(await pending)
    // Reject at once with the signal's reason, like fetch; cancelling the token drops
    // the Rust future (aborting the request); its own late rejection is ignored.
    return new Promise((resolve, reject) => {
      const onAbort = () => { token.cancel(); reject(signal.reason) }
      signal.addEventListener('abort', onAbort, { once: true })
      pending.then(
        (n) => { signal.removeEventListener('abort', onAbort); resolve(new Response(n)) },
        (e) => { signal.removeEventListener('abort', onAbort); reject(e) },
      )
    })
  }

  get(target, path = '', opts = {}) { return this.call({ ...opts, method: 'GET', target, path }) }
  head(target, path = '', opts = {}) { return this.call({ ...opts, method: 'HEAD', target, path }) }
  options(target, path = '', opts = {}) { return this.call({ ...opts, method: 'OPTIONS', target, path }) }
  delete(target, path = '', opts = {}) { return this.call({ ...opts, method: 'DELETE', target, path }) }
  post(target, path = '', opts = {}) { return this.call({ ...opts, method: 'POST', target, path }) }
  put(target, path = '', opts = {}) { return this.call({ ...opts, method: 'PUT', target, path }) }
  patch(target, path = '', opts = {}) { return this.call({ ...opts, method: 'PATCH', target, path }) }

  /** Counters per service: `{ services: { [name]: { requests, attempts, retries, ... } } }`. */
  stats() { return JSON.parse(this.#native.statsJson()) }

  /** Later calls reject with COURIER_CLOSED; calls in flight finish. */
  close() { this.#native.close() }
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
  get trace() { return this.#native.trace }
  /** The context the message carried, as a TraceContext. */
  get traceContext() { return this.#native.traceContext }
  async ack() { return this.#native.ack() }
  async nack(requeue = true) { return this.#native.nack(requeue) }
  /** Dead-letters the message. */
  async reject() { return this.#native.reject() }
  /** Rejects with COURIER_CONFIG when this delivery is not a request. */
  async reply(body, headers = undefined) { return this.#native.reply(toBuffer(body) ?? Buffer.alloc(0), headers) }
}

const delivery = (n) => (n === null ? null : new Delivery(n))

class Consumer {
  #native
  constructor(n) { this.#native = n }
  /** The next delivery, or null once closed; rejects with COURIER_TIMEOUT after timeoutMs. */
  async next(opts = {}) { return delivery(await this.#native.next(opts.timeoutMs)) }
  /** Stops consuming; unacknowledged deliveries return to the queue. */
  async close() { return this.#native.close() }
  async *[Symbol.asyncIterator]() {
    for (let d = await this.next(); d !== null; d = await this.next()) yield d
  }
}


class Bus {
  #native
  constructor(n) { this.#native = n }

  static async connect(config) { return new Bus(await native.NativeBus.connect(configJson(config))) }

  // Every Promise-returning method is async, so a bad argument rejects the Promise like
  // any other failure instead of throwing synchronously.
  async declareQueue(name, opts = {}) {
    return this.#native.declareQueue(name, {
      quorum: opts.quorum,
      deliveryLimit: opts.deliveryLimit,
      deadLetter: opts.deadLetter,
      ttlMs: opts.ttlMs,
    })
  }

  async declareExchange(name, kind = 'topic') { return this.#native.declareExchange(name, kind) }
  async bind(queue, exchange, routingKey) { return this.#native.bind(queue, exchange, routingKey) }

  /** Resolves once the broker confirms, with the message id and the trace context sent
   * (`trace`, a carrier, and `traceContext`). */
  async publish(msg) {
    return this.#native.publish({
      exchange: msg.exchange ?? '',
      routingKey: msg.routingKey,
      body: toBuffer(msg.body) ?? Buffer.alloc(0),
      headers: msg.headers,
      messageId: msg.messageId,
      correlationId: msg.correlationId,
      persistent: msg.persistent,
      trace: parentTrace(msg.trace),
      deadlineMs: msg.deadlineMs,
    })
  }

  async consume(queue, opts = {}) {
    return new Consumer(await this.#native.consume(queue, { prefetch: opts.prefetch, dedup: opts.dedup }))
  }

  /** A consumer of RPC requests: each delivery's `reply()` answers its caller. */
  async serve(queue) { return new Consumer(await this.#native.serve(queue)) }

  /** Sends a request and resolves to the reply; rejects with COURIER_TIMEOUT after timeoutMs. */
  async request(req) {
    return new Delivery(await this.#native.request({
      exchange: req.exchange,
      routingKey: req.routingKey,
      body: toBuffer(req.body) ?? Buffer.alloc(0),
      timeoutMs: req.timeoutMs,
      headers: req.headers,
      trace: parentTrace(req.trace),
    }))
  }

  /** Counters since connecting: `{ published, confirmed, ..., deduplicated, rpc_in_flight, reconnects }`,
   * snake_case like `client.stats()`: both are the one stats schema every language reports. */
  stats() {
    return JSON.parse(this.#native.statsJson())
  }

  async close() { return this.#native.close() }
}

module.exports = { Client, Bus, Consumer, Delivery, Response, TraceContext }
