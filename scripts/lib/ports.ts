/**
 * Picking TCP ports on loopback for nodes, Orthanc, storescp and proxies.
 */
import { once } from 'node:events'
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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

/**
 * Ports handed out are remembered, in this process and across processes, until the process ends. Between
 * `freePort` and the program binding the port nothing holds it, so without this two calls made before either
 * binds could pick the same port (a node once got one port for both its TCP and WebSocket listeners), and so
 * could two test files running side by side.
 */
const handedOut = new Set<number>()
const CLAIMS = join(tmpdir(), 'radmesh-port-claims')
/** A claim older than this belongs to a run long gone even if its process id has been reused. */
const CLAIM_MAX_AGE_MS = 6 * 3600_000

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Claims `port` for this process by creating a file no other process may create; a dead process's claim is taken over. */
function claim(port: number): boolean {
  const file = join(CLAIMS, String(port))
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx')
      writeSync(fd, String(process.pid))
      closeSync(fd)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return true // no claims directory to share: in-process only
      try {
        const owner = Number(readFileSync(file, 'utf8'))
        const stale = Date.now() - statSync(file).mtimeMs > CLAIM_MAX_AGE_MS
        if (owner === process.pid || (owner > 0 && alive(owner) && !stale)) return false
        rmSync(file, { force: true })
      } catch {
        return false
      }
    }
  }
  return false
}

/** A port free now, outside the kernel's range for outgoing connections when there is room below it. */
export async function freePort(): Promise<number> {
  try {
    mkdirSync(CLAIMS, { recursive: true })
  } catch {}
  if (EPHEMERAL_LOW - PORTS_FROM > 1000) {
    for (let attempt = 0; attempt < 200; attempt++) {
      const port = PORTS_FROM + Math.floor(Math.random() * (EPHEMERAL_LOW - PORTS_FROM))
      if (handedOut.has(port) || !(await canListen(port)) || !claim(port)) continue
      handedOut.add(port)
      return port
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
