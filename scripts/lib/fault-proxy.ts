/**
 * A userland TCP fault proxy for tests of transfers over bad links (this machine has no netem): it forwards
 * connections to a target with a rate limit (one token bucket per direction, shared by all connections,
 * like one link), a one-way delay on every byte (order kept), and cuts every open connection on a timer.
 * It counts the bytes it delivers in each direction, so a test can tell what a transfer really cost.
 *
 * Memory stays bounded: a direction of a connection with more than QUEUE_HIGH_BYTES waiting pauses its
 * reading side until the queue is down to QUEUE_LOW_BYTES, and a receiver that does not read (its socket
 * asks for 'drain') holds up its queue, which then pauses its sender the same way.
 */
import { createConnection, createServer, type Socket } from 'node:net'

export interface FaultProxyOptions {
  /** where connections go */
  target: { host: string; port: number }
  /** 0 = any free port on 127.0.0.1 */
  listenPort?: number
  /**
   * link rate in bits per second, each direction separately, shared by all connections (a token bucket with a
   * small burst, e.g. 16 KiB); undefined = unlimited
   */
  bitsPerSecond?: number
  /** one-way delay added to every byte in each direction (order kept) */
  latencyMs?: number
  /** cut (destroy both sockets of) every open connection every this many ms; undefined = never */
  cutEveryMs?: number
}

export interface FaultProxy {
  port: number
  /** bytes forwarded client -> target and target -> client, over all connections, ever */
  readonly bytesToTarget: number
  readonly bytesFromTarget: number
  /** how many connections were cut */
  readonly cuts: number
  /** stop or restart cutting (e.g. let the transfer finish cleanly) */
  setCutting(on: boolean): void
  /** a partition: cut every open connection and refuse new ones (reset at once) until unblocked */
  setBlocked(on: boolean): void
  close(): Promise<void>
}

const QUEUE_HIGH_BYTES = 1024 * 1024
const QUEUE_LOW_BYTES = QUEUE_HIGH_BYTES / 2
/**
 * The bucket holds at most this, or 20 ms of the rate when that is more: timers fire a few ms late under
 * load, and a bucket smaller than what the link carries between two wake-ups would cap the rate below the
 * limit (16 KiB per ms is 16 MB/s, less than the 20 MB/s the exchange tests ask for).
 */
const MIN_BURST_BYTES = 16 * 1024
const BURST_MS = 20
/** Waiting for tokens, wake up for no less than this much of the link's time (or the rest of the piece). */
const MIN_WAKE_MS = 5

/** A piece of the stream in one direction, due at the far end at `due` (performance.now() ms). */
interface Piece {
  bytes: Buffer
  due: number
}

/** One direction of one connection. */
interface Lane {
  readonly source: Socket
  readonly sink: Socket
  readonly queue: Piece[]
  queued: number
  /** the source sent its FIN; once the queue is empty the sink gets one too */
  sourceEnded: boolean
  sinkEnded: boolean
  /** we paused the source because the queue is over QUEUE_HIGH_BYTES */
  paused: boolean
  /** the sink's buffer is full: wait for its 'drain' */
  blocked: boolean
  dead: boolean
}

/**
 * One direction of the link, shared by every connection: a token bucket (when rate-limited) and the lanes
 * that have something to deliver, served in turn, one slice each, so connections share the rate.
 */
class Link {
  /** bytes delivered, ever */
  bytes = 0
  private readonly bytesPerMs: number | undefined
  private readonly burst: number
  private readonly minWake: number
  private tokens: number
  private refilledAt = performance.now()
  private readonly active = new Set<Lane>()
  private timer: NodeJS.Timeout | undefined
  private timerAt = Infinity

  constructor(bitsPerSecond: number | undefined) {
    this.bytesPerMs = bitsPerSecond === undefined ? undefined : bitsPerSecond / 8 / 1000
    this.burst =
      this.bytesPerMs === undefined ? Infinity : Math.max(MIN_BURST_BYTES, Math.ceil(this.bytesPerMs * BURST_MS))
    this.minWake = this.bytesPerMs === undefined ? 0 : Math.max(1, Math.ceil(this.bytesPerMs * MIN_WAKE_MS))
    this.tokens = this.burst
  }

  /** A lane has new data (or its end): deliver what may go now, and set a timer for the rest. */
  wake(lane: Lane): void {
    this.active.add(lane)
    this.pump()
  }

  forget(lane: Lane): void {
    this.active.delete(lane)
  }

  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
    this.active.clear()
  }

  private pump(): void {
    const now = performance.now()
    if (this.bytesPerMs !== undefined) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.refilledAt) * this.bytesPerMs)
      this.refilledAt = now
    }
    let wakeAt = Infinity
    let moved = true
    while (moved) {
      moved = false
      for (const lane of [...this.active]) {
        if (lane.dead) {
          this.active.delete(lane)
          continue
        }
        if (lane.blocked) continue
        const head = lane.queue[0]
        if (head === undefined) {
          this.active.delete(lane)
          if (lane.sourceEnded && !lane.sinkEnded) {
            lane.sinkEnded = true
            lane.sink.end()
          }
          continue
        }
        if (head.due > now) {
          wakeAt = Math.min(wakeAt, head.due)
          continue
        }
        let n = head.bytes.byteLength
        if (this.bytesPerMs !== undefined) {
          const worthWaking = Math.min(n, this.minWake)
          if (this.tokens < worthWaking) {
            wakeAt = Math.min(wakeAt, now + (worthWaking - this.tokens) / this.bytesPerMs)
            continue
          }
          n = Math.min(n, Math.floor(this.tokens), MIN_BURST_BYTES)
          this.tokens -= n
        }
        this.deliver(lane, head, n)
        // Served: to the back of the line, so each connection gets a slice in turn.
        this.active.delete(lane)
        this.active.add(lane)
        moved = true
      }
    }
    this.schedule(wakeAt)
  }

  private deliver(lane: Lane, head: Piece, n: number): void {
    let bytes = head.bytes
    if (n < bytes.byteLength) {
      bytes = bytes.subarray(0, n)
      head.bytes = head.bytes.subarray(n)
    } else {
      lane.queue.shift()
    }
    lane.queued -= n
    this.bytes += n
    if (!lane.sink.write(bytes)) {
      lane.blocked = true
      lane.sink.once('drain', () => {
        lane.blocked = false
        if (!lane.dead) this.wake(lane)
      })
    }
    if (lane.paused && lane.queued <= QUEUE_LOW_BYTES) {
      lane.paused = false
      lane.source.resume()
    }
  }

  private schedule(at: number): void {
    if (at === Infinity || at >= this.timerAt) return
    clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        this.timerAt = Infinity
        this.pump()
      },
      Math.max(0, Math.ceil(at - performance.now()))
    )
  }
}

/** One proxied connection: the accepted socket, the one to the target, and a lane each way. */
interface Connection {
  readonly client: Socket
  readonly target: Socket
  readonly up: Lane
  readonly down: Lane
  dead: boolean
}

function lane(source: Socket, sink: Socket): Lane {
  return {
    source,
    sink,
    queue: [],
    queued: 0,
    sourceEnded: false,
    sinkEnded: false,
    paused: false,
    blocked: false,
    dead: false
  }
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const toTarget = new Link(options.bitsPerSecond)
  const fromTarget = new Link(options.bitsPerSecond)
  const latencyMs = options.latencyMs ?? 0
  const open = new Set<Connection>()
  let cuts = 0
  let cutter: NodeJS.Timeout | undefined

  /** Ends a connection at once, queued bytes dropped; says whether it was still open. */
  const kill = (connection: Connection, reset: boolean): boolean => {
    if (connection.dead) return false
    connection.dead = true
    open.delete(connection)
    for (const [one, link] of [
      [connection.up, toTarget],
      [connection.down, fromTarget]
    ] as const) {
      one.dead = true
      one.queue.length = 0
      one.queued = 0
      link.forget(one)
    }
    for (const socket of [connection.client, connection.target]) {
      // A cut sends a reset, so both ends see a failed link rather than an orderly close.
      if (reset && !socket.destroyed && !socket.connecting) socket.resetAndDestroy()
      else socket.destroy()
    }
    return true
  }

  const forward = (connection: Connection, one: Lane, link: Link): void => {
    one.source.on('data', (data: Buffer) => {
      if (one.dead) return
      one.queue.push({ bytes: data, due: performance.now() + latencyMs })
      one.queued += data.byteLength
      if (!one.paused && one.queued > QUEUE_HIGH_BYTES) {
        one.paused = true
        one.source.pause()
      }
      link.wake(one)
    })
    one.source.on('end', () => {
      one.sourceEnded = true
      if (!one.dead) link.wake(one)
    })
    one.source.on('error', () => {
      kill(connection, false)
    })
    one.source.on('close', () => {
      // Closed after both FINs: the other side finishes delivering and closes in turn. Closed otherwise
      // (destroyed, reset): the other side goes too.
      if (!(connection.up.sourceEnded && connection.down.sourceEnded)) kill(connection, false)
      else if (connection.client.destroyed && connection.target.destroyed) open.delete(connection)
    })
  }

  let blocked = false
  const server = createServer({ allowHalfOpen: true }, client => {
    if (blocked) {
      client.resetAndDestroy()
      return
    }
    const target = createConnection({ host: options.target.host, port: options.target.port, allowHalfOpen: true })
    client.setNoDelay(true)
    target.setNoDelay(true)
    const connection: Connection = { client, target, up: lane(client, target), down: lane(target, client), dead: false }
    open.add(connection)
    forward(connection, connection.up, toTarget)
    forward(connection, connection.down, fromTarget)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('fault proxy: no TCP address')

  const setCutting = (on: boolean): void => {
    clearInterval(cutter)
    cutter = undefined
    if (!on || options.cutEveryMs === undefined) return
    cutter = setInterval(() => {
      for (const connection of [...open]) {
        if (kill(connection, true)) cuts++
      }
    }, options.cutEveryMs)
  }
  setCutting(true)

  return {
    port: address.port,
    get bytesToTarget() {
      return toTarget.bytes
    },
    get bytesFromTarget() {
      return fromTarget.bytes
    },
    get cuts() {
      return cuts
    },
    setCutting,
    setBlocked(on: boolean) {
      blocked = on
      if (on) for (const connection of [...open]) if (kill(connection, true)) cuts++
    },
    async close() {
      setCutting(false)
      const closed = new Promise<void>(resolve => {
        server.close(() => {
          resolve()
        })
      })
      for (const connection of [...open]) kill(connection, false)
      toTarget.stop()
      fromTarget.stop()
      await closed
    }
  }
}
