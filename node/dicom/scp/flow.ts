/**
 * Flow control of one DICOM connection: the socket is paused while an operation runs (an SCU that sends ahead
 * waits in TCP, not in memory) or while a data set's sink asks to wait, and resumed once neither holds; and a
 * stall timer runs while the SCU owes us bytes (inside a PDU, a command or a data set) and we are reading.
 * Our own pause is never a stall.
 */
import type { Socket } from 'node:net'

/** Why the socket is paused: an operation is running (the SCU sent ahead), or a sink asked to wait. */
export const PAUSED_FOR_QUEUE = 1
export const PAUSED_FOR_DRAIN = 2

export interface FlowEvents {
  /** True inside a PDU, a command or a data set: the SCU owes us bytes. */
  midway(): boolean
  /** No byte came for `ms` while the SCU owed us some. */
  stalled(ms: number): void
}

export class SocketFlow {
  readonly #socket: Pick<Socket, 'pause' | 'resume'>
  readonly #stallMs: number
  readonly #events: FlowEvents
  #paused = 0
  /** runs while the SCU owes us bytes and we are reading */
  #stallTimer: NodeJS.Timeout | undefined
  #stopped = false

  constructor(socket: Pick<Socket, 'pause' | 'resume'>, stallMs: number, events: FlowEvents) {
    this.#socket = socket
    this.#stallMs = stallMs
    this.#events = events
  }

  isPaused(reason: number): boolean {
    return (this.#paused & reason) !== 0
  }

  /** Stops reading the socket for `reason` until `resume(reason)`. */
  pause(reason: number): void {
    if (this.#paused === 0) this.#socket.pause()
    this.#paused |= reason
    this.watch()
  }

  resume(reason: number): void {
    if ((this.#paused & reason) === 0) return
    this.#paused &= ~reason
    if (this.#paused !== 0 || this.#stopped) return
    this.#socket.resume()
    this.watch()
  }

  /** Runs the stall timer while the SCU owes us bytes and we are reading; restarted by every read. */
  watch(): void {
    if (this.#stopped || this.#paused !== 0 || !this.#events.midway()) {
      clearTimeout(this.#stallTimer)
      this.#stallTimer = undefined
      return
    }
    if (this.#stallTimer !== undefined) {
      this.#stallTimer.refresh()
      return
    }
    const ms = this.#stallMs
    this.#stallTimer = setTimeout(() => {
      this.#events.stalled(ms)
    }, ms)
    this.#stallTimer.unref()
  }

  /** The connection is closing: the socket is never resumed, and no stall is watched for. */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#stallTimer)
    this.#stallTimer = undefined
  }
}
