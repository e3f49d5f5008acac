/**
 * Picking TCP ports on loopback for nodes, Orthanc, storescp and proxies.
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * The lowest port the kernel hands out as the local port of outgoing connections. Ports below it are what
 * `freePort` picks: a test that stops a node and starts it again on the same port must not find it taken
 * by some connection's source port meanwhile (a convergence run failed that way).
 */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768
  } catch {
    return 32768
  }
})()
const PORTS_FROM = 20_000

async function canListen(port: number): Promise<boolean> {
  const server = createServer()
  try {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    return true
  } catch {
    return false
  } finally {
    if (server.listening) server.close()
  }
}

/** A port free now, outside the kernel's range for outgoing connections when there is room below it. */
export async function freePort(): Promise<number> {
  if (EPHEMERAL_LOW - PORTS_FROM > 1000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = PORTS_FROM + Math.floor(Math.random() * (EPHEMERAL_LOW - PORTS_FROM))
      if (await canListen(port)) return port
    }
  }
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}
