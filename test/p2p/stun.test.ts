/**
 * The STUN Binding responder of relay members (node/p2p/stun.ts): a Binding request over UDP is answered with the
 * sender's own address and port (XOR-MAPPED-ADDRESS, RFC 5389) and a valid FINGERPRINT; anything else is dropped.
 */
import { createSocket } from 'node:dgram'
import { randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { startStunServer, stunBindingResponse } from '../../node/p2p/stun.ts'

const bindingRequest = (transaction: Buffer): Buffer => {
  const header = Buffer.alloc(20)
  header.writeUInt16BE(0x0001, 0)
  header.writeUInt16BE(0, 2)
  header.writeUInt32BE(0x2112a442, 4)
  transaction.copy(header, 8)
  return header
}

test('a Binding request is answered with the XOR-mapped address of its sender', async () => {
  const server = await startStunServer('127.0.0.1', 0)
  const client = createSocket('udp4')
  try {
    await new Promise<void>(resolve => client.bind(0, '127.0.0.1', resolve))
    const transaction = randomBytes(12)
    const answer = new Promise<Buffer>(resolve => client.once('message', resolve))
    client.send(Buffer.from('not stun at all, ignored'), server.port, '127.0.0.1')
    client.send(bindingRequest(transaction), server.port, '127.0.0.1')
    const response = await answer
    assert.is(response.readUInt16BE(0), 0x0101, 'a Binding success response')
    assert.is(response.readUInt16BE(2) + 20, response.length)
    assert.ok(response.subarray(8, 20).equals(transaction))
    assert.is(response.readUInt16BE(20), 0x0020, 'XOR-MAPPED-ADDRESS first')
    const port = response.readUInt16BE(26) ^ 0x2112
    const ip = (response.readUInt32BE(28) ^ 0x2112a442) >>> 0
    assert.is(port, client.address().port)
    assert.is([ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.'), '127.0.0.1')
    const fingerprint = response.length - 8
    assert.is(response.readUInt16BE(fingerprint), 0x8028, 'FINGERPRINT last')
    assert.is(response.readUInt32BE(fingerprint + 4), (crc32(response.subarray(0, fingerprint)) ^ 0x5354554e) >>> 0)
  } finally {
    client.close()
    await server.close()
  }
})

test('anything but a well-formed IPv4 Binding request gets no answer', () => {
  const request = bindingRequest(randomBytes(12))
  assert.ok(stunBindingResponse(request, '10.0.0.1', 1234) !== undefined)
  assert.is(stunBindingResponse(request.subarray(0, 19), '10.0.0.1', 1234), undefined, 'short')
  const response = Buffer.from(request)
  response.writeUInt16BE(0x0101, 0)
  assert.is(stunBindingResponse(response, '10.0.0.1', 1234), undefined, 'a response, not a request')
  const noCookie = Buffer.from(request)
  noCookie.writeUInt32BE(0, 4)
  assert.is(stunBindingResponse(noCookie, '10.0.0.1', 1234), undefined, 'RFC 3489 (no magic cookie)')
  assert.is(stunBindingResponse(Buffer.concat([request, Buffer.alloc(4)]), '10.0.0.1', 1234), undefined, 'length')
  assert.is(stunBindingResponse(request, '::1', 1234), undefined, 'IPv6 sender')
})

test.run()
