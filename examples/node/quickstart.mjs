// courierkit quick start (ESM): one HTTP call and one message, from the installed package.
//
//   npm install courierkit
//   node quickstart.mjs                      # in-process memory:// broker
//   COURIER_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f node quickstart.mjs
//                                            # the same messages, also over RabbitMQ
//
// The HTTP upstream is a tiny server started here on 127.0.0.1.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import { Bus, Client } from 'courierkit'

async function httpCall() {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ item: (req.url ?? '').split('/').pop(), inStock: 3 })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
  const upstream = `http://127.0.0.1:${port}`
  const client = new Client({ services: { inventory: { endpoints: [upstream], deadline_ms: 2000 } } })
  const resp = await client.get('inventory', '/v1/items/42')
  console.log(`GET inventory /v1/items/42 -> ${resp.status} ${resp.text()} (${resp.attempts} attempt)`)
  assert.deepEqual(resp.json(), { item: '42', inStock: 3 })
  client.close()
  server.close()
}

/** @param {string} url a memory:// or amqp:// URL */
async function messaging(url) {
  const queue = `quickstart.${randomUUID().slice(0, 8)}`
  const bus = await Bus.connect({ urls: [url] })
  // A classic queue without a dead-letter queue: nothing is left behind on a broker.
  await bus.declareQueue(queue, { quorum: false, deadLetter: false, ttlMs: 60000 })
  const receipt = await bus.publish({ routingKey: queue, body: '{"order": 42}' })
  console.log(`[${url.split('@').pop()}] published ${receipt.messageId} (confirmed)`)
  const consumer = await bus.consume(queue)
  const delivery = await consumer.next({ timeoutMs: 5000 })
  assert.ok(delivery, 'no delivery within 5 s')
  assert.equal(delivery.messageId, receipt.messageId)
  await delivery.ack()
  console.log(`consumed ${delivery.messageId} body=${delivery.body} -> acked`)
  await consumer.close()
  await bus.close()
}

await httpCall()
await messaging('memory://quickstart')
if (process.env.COURIER_AMQP_URL) await messaging(process.env.COURIER_AMQP_URL)
console.log('quickstart: ok')
