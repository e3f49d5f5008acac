/**
 * Length-prefixed messages on a member's stream (unsigned varint, as libp2p's lpStream writes them), read
 * so that what a member sends can never cost more than its protocol allows, and so that every way a read
 * fails has a refusal code (see penalties.ts):
 *
 * - the length prefix is checked against the protocol's limit before a byte of the body is awaited;
 * - a stream that ends between two messages has ended (`read` gives undefined); one that ends inside a
 *   message was cut short (`truncated-message`);
 * - once a message has started, the rest of it must arrive within `messageTimeoutMs`: a member that sends
 *   half a message and stops holds at most that much of a buffer, for at most that long (`stalled-stream`);
 * - a message must fit the stream's read buffer (`maxBufferSize`, libp2p's 4 MiB unless given): one whose
 *   prefix declares more is refused at once (`ReadBufferOverflowError`), before its body is awaited, and
 *   bytes buffered ahead of the reader are bounded by the same size (libp2p's byteStream resets past it).
 */
import type { Stream } from '@libp2p/interface'
import { byteStream } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'

/** libp2p's own read buffer of a stream (byteStream, lpStream): what one member may make a stream hold. */
export const READ_BUFFER_BYTES = 4 * 1024 * 1024
/** A varint of a length this radmesh accepts is at most this long (7 bytes hold 2^49, far past every limit). */
const MAX_LENGTH_BYTES = 7

/** Unsigned varint (LEB128), as lpStream writes lengths. */
export function encodeLength(length: number): Uint8Array {
  const out: number[] = []
  let rest = length
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  out.push(rest)
  return Uint8Array.from(out)
}

export class OversizedMessageError extends Error {
  static override readonly name = 'OversizedMessageError'
  readonly code = 'RADMESH_OVERSIZED_MESSAGE'
  constructor(message: string) {
    super(message)
    this.name = 'OversizedMessageError'
  }
}

/** A message within its protocol's limit that does not fit the stream's read buffer. */
export class ReadBufferOverflowError extends Error {
  static override readonly name = 'ReadBufferOverflowError'
  readonly code = 'RADMESH_READ_BUFFER_OVERFLOW'
  /** the length its prefix declared */
  readonly length: number
  constructor(length: number, limit: number) {
    super(`a message of ${length} bytes does not fit the ${limit}-byte read buffer`)
    this.name = 'ReadBufferOverflowError'
    this.length = length
  }
}

export class TruncatedMessageError extends Error {
  static override readonly name = 'TruncatedMessageError'
  readonly code = 'RADMESH_TRUNCATED_MESSAGE'
  constructor(message: string) {
    super(message)
    this.name = 'TruncatedMessageError'
  }
}

export class StalledStreamError extends Error {
  static override readonly name = 'StalledStreamError'
  readonly code = 'RADMESH_STALLED_STREAM'
  constructor(message: string) {
    super(message)
    this.name = 'StalledStreamError'
  }
}

export interface MessageStreamOptions {
  /** the largest message body the protocol allows */
  maxDataLength: number
  /** the largest message the stream holds at once (READ_BUFFER_BYTES unless given) */
  maxBufferSize?: number
  /** a message once started must be whole within this time */
  messageTimeoutMs: number
}

export interface MessageStream {
  /**
   * The next message, or undefined when the stream ended cleanly between messages. `signal` aborts the read;
   * `idleMs` bounds the wait for its first byte (a stall when it passes).
   */
  read(signal?: AbortSignal, idleMs?: number): Promise<Uint8Array | undefined>
  /** Writes a message, waiting for the stream to drain; a stall when `timeoutMs` pass first. */
  write(data: Uint8Array | Uint8ArrayList, signal?: AbortSignal, timeoutMs?: number): Promise<void>
  /** Writes several messages in one write (one frame on the wire for many small messages). */
  writeAll(messages: Uint8Array[], signal?: AbortSignal, timeoutMs?: number): Promise<void>
}

type Signal = AbortSignal | undefined

export function messageStream(stream: Stream, options: MessageStreamOptions): MessageStream {
  const bufferSize = options.maxBufferSize ?? READ_BUFFER_BYTES
  const bytes = byteStream(stream, { maxBufferSize: bufferSize })
  const pending = new Uint8ArrayList()
  let ended = false

  /** Reads more bytes into `pending`; false when the stream has ended. */
  const fill = async (signal: AbortSignal | undefined): Promise<boolean> => {
    if (ended) return false
    const chunk = await bytes.read(signal === undefined ? {} : { signal })
    if (chunk === null) {
      ended = true
      return false
    }
    pending.append(chunk)
    return true
  }

  /** A caller's timeout is a stall of the peer; any other abort is the caller's own. */
  const stalledOr = (signal: AbortSignal): Error =>
    (signal.reason as Error | undefined)?.name === 'TimeoutError'
      ? new StalledStreamError('no message arrived within the time allowed')
      : (signal.reason as Error)

  /**
   * Runs `work` with a signal that aborts when `signal` does or `ms` pass, whichever is first; `late` tells
   * which. The timer is cleared as soon as `work` ends (AbortSignal.timeout's would live on for `ms`).
   */
  type Work<T> = (during: AbortSignal | undefined) => Promise<T>
  const bounded = async <T>(signal: Signal, ms: number | undefined, work: Work<T>, late: () => Error): Promise<T> => {
    if (ms === undefined) return await work(signal)
    const during = new AbortController()
    let expired = false
    const timer = setTimeout(() => {
      expired = true
      during.abort()
    }, ms)
    timer.unref()
    const forward = (): void => {
      during.abort()
    }
    if (signal?.aborted === true) forward()
    signal?.addEventListener('abort', forward, { once: true })
    try {
      return await work(during.signal)
    } catch (error) {
      if (expired) throw late()
      throw error
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', forward)
    }
  }

  return {
    async read(signal, idleMs) {
      try {
        const started = await bounded(
          signal,
          idleMs,
          async during => pending.byteLength > 0 || (await fill(during)),
          () => new StalledStreamError(`no message arrived within ${idleMs} ms`)
        )
        if (!started) return undefined
      } catch (error) {
        if (signal?.aborted === true) throw stalledOr(signal)
        throw error
      }
      // The message has started: the rest of it must come within messageTimeoutMs.
      const late = (): Error => new StalledStreamError(`a message not whole within ${options.messageTimeoutMs} ms`)
      try {
        return await bounded(
          signal,
          options.messageTimeoutMs,
          async during => {
            let length = 0
            let prefix = 0
            for (let scale = 1; ; scale *= 0x80) {
              if (prefix === MAX_LENGTH_BYTES) throw new OversizedMessageError('a length prefix longer than any limit')
              while (pending.byteLength <= prefix) {
                if (!(await fill(during))) throw new TruncatedMessageError('the stream ended inside a length prefix')
              }
              const byte = pending.get(prefix++)
              length += (byte & 0x7f) * scale
              if ((byte & 0x80) === 0) break
            }
            if (length > options.maxDataLength) {
              throw new OversizedMessageError(`a message of ${length} bytes; the limit is ${options.maxDataLength}`)
            }
            if (length > bufferSize) throw new ReadBufferOverflowError(length, bufferSize)
            pending.consume(prefix)
            while (pending.byteLength < length) {
              if (!(await fill(during))) {
                throw new TruncatedMessageError(`the stream ended ${pending.byteLength} bytes into ${length}`)
              }
            }
            const message = pending.subarray(0, length)
            pending.consume(length)
            return message
          },
          late
        )
      } catch (error) {
        if (signal?.aborted === true) throw stalledOr(signal)
        throw error
      }
    },
    async write(data, signal, timeoutMs) {
      const message = new Uint8ArrayList(encodeLength(data.byteLength), data)
      const send = async (during: Signal): Promise<void> => {
        await bytes.write(message, during === undefined ? {} : { signal: during })
      }
      await bounded(signal, timeoutMs, send, () => new StalledStreamError(`the peer took nothing for ${timeoutMs} ms`))
    },
    async writeAll(messages, signal, timeoutMs) {
      const all = new Uint8ArrayList()
      for (const message of messages) all.append(encodeLength(message.byteLength), message)
      const send = async (during: Signal): Promise<void> => {
        await bytes.write(all, during === undefined ? {} : { signal: during })
      }
      await bounded(signal, timeoutMs, send, () => new StalledStreamError(`the peer took nothing for ${timeoutMs} ms`))
    }
  }
}
