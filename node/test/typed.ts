// Type-checked by `tsc --noEmit` (not run): the public types accept what the docs show.
import { Bus, Client, CourierError, Delivery, Response } from '..'

async function usage(): Promise<void> {
  const client = new Client({ services: { orders: { endpoints: ['http://127.0.0.1:8081', { url: 'http://h:1', version: 'v2' }] } } })
  const resp: Response = await client.post('orders', '/v1/items', { json: { a: 1 }, idempotencyKey: 'k1', deadlineMs: 500 })
  const status: number = resp.status
  const attempts: number = resp.attempts
  const item = resp.json<{ id: string }>()
  void [status, attempts, item.id]

  const bus = await Bus.connect({ urls: ['amqp://guest:guest@127.0.0.1:5672/%2f'] })
  await bus.declareQueue('orders', { quorum: true, deadLetter: true })
  const { messageId } = await bus.publish({ routingKey: 'orders', body: Buffer.from('x') })
  const consumer = await bus.consume('orders', { prefetch: 10 })
  for await (const d of consumer) {
    const delivery: Delivery = d
    const id: string | null | undefined = delivery.messageId
    if (id === messageId) await delivery.ack()
  }
  try {
    await client.get('orders')
  } catch (e) {
    const err = e as CourierError
    if (err.code === 'COURIER_TIMEOUT') return
  }
}
void usage
