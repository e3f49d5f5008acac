/**
 * This node's outbound `/radmesh/sync/2.0.0` stream to one member (sync.ts): messages go in order, small
 * ones written together; what is queued is bounded, and a member that takes nothing loses its channel (the
 * next resync catches up). Nothing is read on it: the member answers on its own stream.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'
import {
  encodeSyncMessage,
  MAX_STEP2_BYTES,
  SYNC_MESSAGE,
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import { openStreamAnyLink } from '../p2p/open-stream.ts'
import { type MessageStream, messageStream } from '../p2p/wire.ts'

/** Messages queued to one member before its channel is dropped as too slow (the next resync catches up). */
const MAX_QUEUED_MESSAGES = 2_000
/** Bytes queued to one member before the same: several whole-document answers. */
const MAX_QUEUED_BYTES = 8 * MAX_STEP2_BYTES
const DIAL_TIMEOUT_MS = 10_000
/** Small messages to one member are written together, up to this many bytes at a time. */
const WRITE_BATCH_BYTES = 256 * 1024

/** Why a channel ended. */
export interface ChannelEnd {
  code: 'sync-stream-reset' | 'sync-queue-full' | 'sync-dial-failed' | 'sync-closed'
  reason: string
}

/** This node's outbound stream to one member: messages are written in order, one at a time. */
export class Channel {
  readonly ready: Promise<boolean>
  /** messages waiting to be written; the writer takes all that wait at once (one write for many small ones) */
  private outbox: Array<{ bytes: Uint8Array; step2: string | undefined }> = []
  private writing = false
  private queued = 0
  private queuedBytes = 0
  private closed = false
  private lp: MessageStream | undefined
  private stream: Stream | undefined
  /** step 2s queued or being written, by document, with their size */
  private readonly step2Pending = new Map<string, number>()
  private readonly onEnd: (end: ChannelEnd) => void

  constructor(libp2p: Libp2p, peer: PeerId, onEnd: (end: ChannelEnd) => void, log: Logger) {
    this.onEnd = onEnd
    this.ready = (async () => {
      try {
        // Over whatever link is open, a relay's limited one included (see p2p/open-stream.ts).
        this.stream = await openStreamAnyLink(libp2p, peer, SYNC_PROTOCOL, {
          signal: AbortSignal.timeout(DIAL_TIMEOUT_MS)
        })
        // Nothing is read on this stream: the member answers on its own.
        this.lp = messageStream(this.stream, { maxDataLength: 0, maxBufferSize: 1, messageTimeoutMs: DIAL_TIMEOUT_MS })
        this.stream.addEventListener('close', (event: Event) => {
          const error = (event as Event & { error?: Error }).error
          if (error !== undefined) this.end('sync-stream-reset', error.message)
        })
        return true
      } catch (error) {
        log.debug(
          { event: 'sync-dial-failed', peer: peer.toString(), error: (error as Error).message },
          'could not open a sync stream'
        )
        this.end('sync-dial-failed', (error as Error).message)
        return false
      }
    })()
  }

  /** Whether a step 2 of the document is queued or being written. */
  answering(docId: string): boolean {
    return this.step2Pending.has(docId)
  }

  send(message: SyncMessage): void {
    if (this.closed) return
    const bytes = encodeSyncMessage(message)
    this.queued++
    this.queuedBytes += bytes.byteLength
    if (this.queued > MAX_QUEUED_MESSAGES || this.queuedBytes > MAX_QUEUED_BYTES) {
      this.end('sync-queue-full', `the member took none of ${this.queued} messages, ${this.queuedBytes} bytes`)
      return
    }
    const step2 = message.type === SYNC_MESSAGE.step2 ? message.docId : undefined
    if (step2 !== undefined) this.step2Pending.set(step2, bytes.byteLength)
    this.outbox.push({ bytes, step2 })
    if (!this.writing) {
      this.writing = true
      this.write()
        .catch((error: unknown) => {
          this.end('sync-stream-reset', (error as Error).message)
        })
        .finally(() => {
          this.writing = false
        })
    }
  }

  /** Writes what waits, in order: up to WRITE_BATCH_BYTES of messages at a time. */
  private async write(): Promise<void> {
    if (!(await this.ready) || this.lp === undefined) return
    while (this.outbox.length > 0 && !this.closed) {
      // What this turn queues goes in the same write (answers to a page of step 1s: one frame, not one each).
      await new Promise(resolve => setImmediate(resolve))
      let bytes = 0
      let count = 0
      const fits = (at: number): boolean => bytes + (this.outbox[at]?.bytes.byteLength ?? 0) <= WRITE_BATCH_BYTES
      while (count < this.outbox.length && (count === 0 || fits(count))) {
        bytes += (this.outbox[count] as { bytes: Uint8Array }).bytes.byteLength
        count++
      }
      const batch = this.outbox.splice(0, count)
      await this.lp.writeAll(batch.map(entry => entry.bytes))
      this.queued -= batch.length
      this.queuedBytes -= bytes
      for (const { step2 } of batch) if (step2 !== undefined) this.step2Pending.delete(step2)
    }
  }

  close(): void {
    this.end('sync-closed', 'closed by this node')
  }

  private end(code: ChannelEnd['code'], reason: string): void {
    if (this.closed) return
    this.closed = true
    this.stream?.abort(new Error(`sync channel closed: ${reason}`))
    this.onEnd({ code, reason })
  }
}
