'use strict'
// TLS through the binding: config passes through as data; handshake failures are COURIER_TLS.
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Bus, Client } = require('..')
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(0) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

/** The client side of a TLS config: the CA, and a client certificate unless `client` is null. */
function tlsConfig(dir, client = 'client') {
  const tls = { ca_pem: fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8') }
  if (client !== null) {
    tls.client_cert_pem = fs.readFileSync(path.join(dir, `${client}.pem`), 'utf8')
    tls.client_key_pem = fs.readFileSync(path.join(dir, `${client}.key`), 'utf8')
  }
  return tls
}

// One attempt: a handshake failure must surface, not be retried away.
const secure = (tls) => ({
  services: { secure: { endpoints: [kit.tls.urls.mtls], retry: { max_attempts: 1 } } },
  tls,
})

test('a mutual TLS call succeeds', async () => {
  const client = new Client(secure(tlsConfig(kit.tls.dir)))
  const resp = await client.get('secure', '/over-tls')
  assert.equal(resp.status, 200)
  assert.equal(resp.json().path, '/over-tls')
  client.close()
})

test('no client certificate rejects with COURIER_TLS naming it', async () => {
  const client = new Client(secure(tlsConfig(kit.tls.dir, null)))
  await assert.rejects(client.get('secure', '/'), (err) => {
    assert.equal(err.code, 'COURIER_TLS')
    assert.equal(err.kind, 'tls')
    assert.ok(err.message.includes('client certificate'), err.message)
    assert.ok(!err.message.includes('PRIVATE KEY'), err.message)
    return true
  })
  client.close()
})

test('a certificate without its key throws COURIER_CONFIG on tls.client_key_pem', () => {
  const tls = tlsConfig(kit.tls.dir)
  delete tls.client_key_pem
  assert.throws(() => new Client(secure(tls)), (err) => {
    assert.equal(err.code, 'COURIER_CONFIG')
    assert.equal(err.field, 'tls.client_key_pem')
    assert.ok(err.message.startsWith('tls.client_key_pem:'), err.message)
    return true
  })
})

const amqpsUrl = process.env.COURIER_AMQPS_URL
test('AMQPS publish and consume with a client certificate',
  { skip: amqpsUrl ? false : 'COURIER_AMQPS_URL is unset (tests/scripts/test-all.sh sets up RabbitMQ\'s TLS listener)' },
  async () => {
    const pki = process.env.COURIER_PKI_DIR || path.join(os.homedir(), '.cache/courier/pki')
    const bus = await Bus.connect({ urls: [amqpsUrl], tls: tlsConfig(pki) })
    const q = 'courier-test.node.tls'
    await bus.declareQueue(q)
    const { messageId } = await bus.publish({ routingKey: q, body: 'over tls' })
    const consumer = await bus.consume(q)
    // Messages left by an interrupted earlier run are acked away, not asserted on.
    let mine = await consumer.next({ timeoutMs: 5000 })
    while (mine.messageId !== messageId) {
      await mine.ack()
      mine = await consumer.next({ timeoutMs: 5000 })
    }
    assert.equal(mine.body.toString(), 'over tls')
    await mine.ack()
    await consumer.close()
    await bus.close()
  })
