/**
 * What the scale benchmark reads from inside a node's process: the bytes of its TCP sockets (as the kernel
 * took and gave them: Noise, Yamux and libp2p framing included, IP and TCP headers not), its memory and its
 * CPU time. Every socket the process opens or accepts is seen through node:diagnostics_channel.
 *
 * Loaded into a `radmesh start` child with `NODE_OPTIONS=--import …/scale-probe.ts`, it counts the sockets
 * of the libp2p listener (RADMESH_PROBE_P2P_PORT, inbound) and every outbound socket (a node dials only
 * members), and on SIGUSR2 writes a `ProbeSample` as JSON to RADMESH_PROBE_FILE. The in-process run imports
 * `watchSockets` instead and attributes each socket to its node itself.
 */
import { subscribe } from 'node:diagnostics_channel'
import { renameSync, writeFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { getHeapSpaceStatistics } from 'node:v8'

export interface WatchedSocket {
  socket: Socket
  inbound: boolean
  localPort: number
  remotePort: number
}

/** Every TCP socket of this process from now on, inbound and outbound (kept after they close: their counts stay). */
export function watchSockets(): WatchedSocket[] {
  const sockets: WatchedSocket[] = []
  const add = (socket: Socket, inbound: boolean): void => {
    const ports = { localPort: socket.localPort ?? 0, remotePort: socket.remotePort ?? 0 }
    const watched: WatchedSocket = { socket, inbound, ...ports }
    sockets.push(watched)
    // An outbound socket knows its ports once connected.
    if (!inbound) {
      socket.once('connect', () => {
        watched.localPort = socket.localPort ?? 0
        watched.remotePort = socket.remotePort ?? 0
      })
    }
  }
  subscribe('net.client.socket', message => {
    add((message as { socket: Socket }).socket, false)
  })
  subscribe('net.server.socket', message => {
    add((message as { socket: Socket }).socket, true)
  })
  return sockets
}

/** Bytes a socket has moved so far, both ways. */
export const socketBytes = (watched: WatchedSocket): { sent: number; received: number } => ({
  sent: watched.socket.bytesWritten ?? 0,
  received: watched.socket.bytesRead ?? 0
})

export interface ProbeSample {
  at: number
  sent: number
  received: number
  /** libp2p sockets open now */
  sockets: number
  memory: NodeJS.MemoryUsage
  heapSpaces: Array<{ name: string; usedMb: number }>
  cpuMs: number
}

const file = process.env['RADMESH_PROBE_FILE']
const p2pPort = Number(process.env['RADMESH_PROBE_P2P_PORT'] ?? 0)
if (file !== undefined && p2pPort > 0) {
  const sockets = watchSockets()
  const isP2p = (watched: WatchedSocket): boolean => (watched.inbound ? watched.localPort === p2pPort : true)
  process.on('SIGUSR2', () => {
    let sent = 0
    let received = 0
    let open = 0
    for (const watched of sockets) {
      if (!isP2p(watched)) continue
      const bytes = socketBytes(watched)
      sent += bytes.sent
      received += bytes.received
      if (!watched.socket.destroyed) open++
    }
    const cpu = process.cpuUsage()
    const sample: ProbeSample = {
      at: Date.now(),
      sent,
      received,
      sockets: open,
      memory: process.memoryUsage(),
      heapSpaces: getHeapSpaceStatistics().map(s => ({ name: s.space_name, usedMb: s.space_used_size / 2 ** 20 })),
      cpuMs: (cpu.user + cpu.system) / 1000
    }
    writeFileSync(`${file}.tmp`, JSON.stringify(sample))
    renameSync(`${file}.tmp`, file)
  })
}
