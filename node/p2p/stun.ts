/**
 * A minimal STUN server (RFC 5389 Binding only) for relay members: a member behind NAT asks it which public
 * address and port its NAT gave a UDP socket (its server-reflexive ICE candidate), which WebRTC hole punching
 * between two members behind NAT needs (see host.ts). It answers Binding requests with XOR-MAPPED-ADDRESS (and
 * MAPPED-ADDRESS, for old clients) and FINGERPRINT; everything else is dropped. No authentication, no state: it
 * tells a sender its own address, nothing more.
 */
import { createSocket, type Socket } from 'node:dgram'
import { isIPv4 } from 'node:net'
import { crc32 } from 'node:zlib'

/** The UDP port a relay member answers STUN on (`--relay --webrtc`), on every interface: STUN's own. */
export const STUN_PORT = 3478

const MAGIC_COOKIE = 0x2112a442
const BINDING_REQUEST = 0x0001
const BINDING_SUCCESS = 0x0101
const MAPPED_ADDRESS = 0x0001
const XOR_MAPPED_ADDRESS = 0x0020
const FINGERPRINT = 0x8028
const FINGERPRINT_XOR = 0x5354554e
const HEADER = 20

/** The answer to `request` (a Binding request) from `address`:`port`, or undefined when it is not one. */
export function stunBindingResponse(request: Buffer, address: string, port: number): Buffer | undefined {
  if (request.length < HEADER || (request[0] ?? 0) & 0xc0) return undefined
  if (request.readUInt16BE(0) !== BINDING_REQUEST || request.readUInt32BE(4) !== MAGIC_COOKIE) return undefined
  if (request.readUInt16BE(2) + HEADER !== request.length || !isIPv4(address)) return undefined
  const ip = Buffer.from(address.split('.').map(Number))
  const xorIp = Buffer.alloc(4)
  xorIp.writeUInt32BE((ip.readUInt32BE(0) ^ MAGIC_COOKIE) >>> 0)
  const attribute = (type: number, value: Buffer): Buffer => {
    const head = Buffer.alloc(4)
    head.writeUInt16BE(type, 0)
    head.writeUInt16BE(value.length, 2)
    return Buffer.concat([head, value])
  }
  const addressValue = (family: number, p: number, addr: Buffer): Buffer => {
    const value = Buffer.alloc(8)
    value.writeUInt8(0, 0)
    value.writeUInt8(family, 1)
    value.writeUInt16BE(p, 2)
    addr.copy(value, 4)
    return value
  }
  const body = Buffer.concat([
    attribute(XOR_MAPPED_ADDRESS, addressValue(0x01, port ^ (MAGIC_COOKIE >>> 16), xorIp)),
    attribute(MAPPED_ADDRESS, addressValue(0x01, port, ip))
  ])
  const header = Buffer.alloc(HEADER)
  header.writeUInt16BE(BINDING_SUCCESS, 0)
  header.writeUInt16BE(body.length + 8, 2)
  header.writeUInt32BE(MAGIC_COOKIE, 4)
  request.copy(header, 8, 8, HEADER)
  const unsigned = Buffer.concat([header, body])
  const fingerprint = Buffer.alloc(4)
  fingerprint.writeUInt32BE((crc32(unsigned) ^ FINGERPRINT_XOR) >>> 0)
  return Buffer.concat([unsigned, attribute(FINGERPRINT, fingerprint)])
}

export interface StunServer {
  port: number
  close(): Promise<void>
}

/** Answers STUN Binding requests on UDP `host`:`port` (IPv4). */
export async function startStunServer(host: string, port: number): Promise<StunServer> {
  const socket: Socket = createSocket({ type: 'udp4' })
  socket.on('message', (message, remote) => {
    const response = stunBindingResponse(message, remote.address, remote.port)
    if (response !== undefined) socket.send(response, remote.port, remote.address)
  })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, host, () => {
      socket.off('error', reject)
      resolve()
    })
  })
  return {
    port: socket.address().port,
    close: () => new Promise<void>(resolve => socket.close(() => resolve()))
  }
}
