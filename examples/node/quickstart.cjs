// courierkit from CommonJS: the same package through `require`, one HTTP call and one
// message on the in-process memory:// broker. See quickstart.mjs for the ESM version.
const assert = require('node:assert/strict')
const http = require('node:http')
const { Bus, Client } = require('courierkit')

async function main() {
  const server = http.createServer((req, res) => res.end('ok'))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
  const client = new Client({ services: { echo: { endpoints: [`http://127.0.0.1:${port}`] } } })
  const resp = await client.get('echo', '/')
  assert.equal(resp.text(), 'ok')
  console.log(`GET echo / -> ${resp.status} ${resp.text()}`)
  client.close()
  server.close()

  const bus = await Bus.connect({ urls: ['memory://quickstart-cjs'] })
  await bus.declareQueue('work', { quorum: false, deadLetter: false })
  const receipt = await bus.publish({ routingKey: 'work', body: 'hello' })
  const consumer = await bus.consume('work')
  const delivery = await consumer.next({ timeoutMs: 5000 })
  if (!delivery) throw new Error('no delivery within 5 s')
  assert.equal(delivery.messageId, receipt.messageId)
  await delivery.ack()
  console.log(`consumed ${delivery.messageId} body=${delivery.body} -> acked`)
  await consumer.close()
  await bus.close()
  console.log('quickstart (CommonJS): ok')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
