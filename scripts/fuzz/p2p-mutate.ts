/**
 * How a p2p fuzz case's valid messages (./p2p-messages.ts) are mutated before they are sent: bit flips,
 * truncation, length prefixes set huge or short, duplication, replay, reordering, oversize, a stall, fields
 * set huge or of the wrong type. Every choice comes from the case's generator, so a case replays on its own.
 */
import { encodeLength } from '../../node/p2p/wire.ts'
import { SYNC_MESSAGE_TIMEOUT_MS, SYNC_PROTOCOL } from '../../protocol/collab/sync.ts'
import {
  ANNOUNCE_PROTOCOL,
  CHUNKS_PROTOCOL,
  EXCHANGE_TIMEOUT_MS,
  MANIFEST_PROTOCOL
} from '../../protocol/exchange/messages.ts'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import { REVOCATIONS_PROTOCOL, REVOCATIONS_TIMEOUT_MS } from '../../protocol/membership/revocations.ts'
import { framed } from '../lib/bad-member.ts'
import { below, type Protocol, pick, type Random, type Valid } from './p2p-messages.ts'

// Mutations: each takes the valid messages (bodies) and gives the bytes to send, framed or not.

/** `stall`: the stream is left hanging after `chunks`; `midway` when they end inside a message. */
interface Mutated {
  name: string
  chunks: Uint8Array[]
  stall: boolean
  midway?: boolean
}

/** How long the site lets a message stop midway, per protocol (a stalled stream must be ended by then). */
export const STALL_LIMIT_MS: Record<Protocol, number> = {
  [MANIFEST_PROTOCOL]: EXCHANGE_TIMEOUT_MS,
  [CHUNKS_PROTOCOL]: EXCHANGE_TIMEOUT_MS,
  [CHUNKS_PROTOCOL_2]: EXCHANGE_TIMEOUT_MS,
  [ANNOUNCE_PROTOCOL]: EXCHANGE_TIMEOUT_MS,
  [SYNC_PROTOCOL]: SYNC_MESSAGE_TIMEOUT_MS,
  [REVOCATIONS_PROTOCOL]: REVOCATIONS_TIMEOUT_MS
}

/** The largest message each protocol takes (a sync update's; an announcement's read buffer). */
const LIMIT_OF: Record<Protocol, number> = {
  [MANIFEST_PROTOCOL]: 512,
  [CHUNKS_PROTOCOL]: 512,
  [CHUNKS_PROTOCOL_2]: 512,
  [ANNOUNCE_PROTOCOL]: 4 * 1024 * 1024,
  [SYNC_PROTOCOL]: 256 * 1024,
  [REVOCATIONS_PROTOCOL]: 2 * 1024 * 1024
}

/** Values a field is set to: huge, negative, fractional, of the wrong type, long. */
const ODD_VALUES: unknown[] = [
  2 ** 53,
  1e308,
  -1,
  2 ** 32,
  0.5,
  -0,
  '',
  'A'.repeat(10_000),
  null,
  true,
  [],
  {},
  [1, 2, 3],
  '1.2.3',
  '0'.repeat(64)
]

function mutateJson(value: unknown, random: Random): unknown {
  if (Array.isArray(value)) {
    if (value.length > 0 && random() < 0.6) {
      const copy = [...value]
      const i = below(random, copy.length)
      copy[i] = mutateJson(copy[i], random)
      return copy
    }
    return random() < 0.5 ? [...value, ...value] : pick(random, ODD_VALUES)
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value)
    if (keys.length === 0 || random() < 0.1) return pick(random, ODD_VALUES)
    const key = pick(random, keys)
    const copy = { ...(value as Record<string, unknown>) }
    const roll = random()
    if (roll < 0.15) delete copy[key]
    else if (roll < 0.25) copy[`${key}x`] = copy[key]
    else copy[key] = random() < 0.5 ? mutateJson(copy[key], random) : pick(random, ODD_VALUES)
    return copy
  }
  return pick(random, ODD_VALUES)
}

function flipBits(bytes: Uint8Array, random: Random): Uint8Array {
  const copy = Uint8Array.from(bytes)
  if (copy.byteLength === 0) return copy
  for (let n = 1 + below(random, 8); n > 0; n--) {
    const i = below(random, copy.byteLength)
    copy[i] = (copy[i] as number) ^ (1 << below(random, 8))
  }
  return copy
}

const MUTATIONS = [
  'flip',
  'truncate',
  'huge-length',
  'short-length',
  'duplicate',
  'replay',
  'reorder',
  'oversize',
  'stall',
  'field',
  'field',
  'varint',
  'valid',
  'split'
] as const

export function mutate(valid: Valid, random: Random, replays: Uint8Array[]): Mutated {
  const bodies = [...valid.messages]
  const target = below(random, bodies.length)
  const body = bodies[target] as Uint8Array
  const all = (list: Uint8Array[]): Uint8Array[] => list.map(framed)
  const replace = (next: Uint8Array): Uint8Array[] => all(bodies.map((b, i) => (i === target ? next : b)))
  const sent = (name: string, chunks: Uint8Array[]): Mutated => ({ name, chunks, stall: false })
  const kind = pick(random, MUTATIONS)
  switch (kind) {
    case 'flip':
      return sent(kind, replace(flipBits(body, random)))
    case 'truncate': {
      const whole = Buffer.concat(all(bodies))
      return sent(kind, [whole.subarray(0, below(random, whole.byteLength))])
    }
    case 'huge-length': {
      const lengths = [2 ** 31, 2 ** 28, 2 ** 48, LIMIT_OF[valid.protocol] + 1, body.byteLength + 1 + below(random, 99)]
      return sent(kind, [Buffer.concat([encodeLength(pick(random, lengths)), body])])
    }
    case 'short-length':
      return sent(kind, [Buffer.concat([encodeLength(below(random, Math.max(1, body.byteLength))), body])])
    case 'duplicate':
      return sent(kind, [...all(bodies), ...all(bodies)])
    case 'replay':
      return sent(kind, replace(replays.length === 0 ? body : pick(random, replays)))
    case 'reorder': {
      if (bodies.length > 1) return sent(kind, all([...bodies].sort(() => random() - 0.5)))
      const copy = Uint8Array.from(body)
      const a = below(random, copy.byteLength)
      const b = below(random, copy.byteLength)
      const length = Math.min(1 + below(random, 16), copy.byteLength - Math.max(a, b))
      const first = copy.slice(a, a + length)
      copy.set(copy.subarray(b, b + length), a)
      copy.set(first, b)
      return sent(kind, replace(copy))
    }
    case 'oversize': {
      const over = LIMIT_OF[valid.protocol] + 1 + below(random, 64)
      const padded = new Uint8Array(random() < 0.5 ? over : body.byteLength + below(random, 1 << 20))
      padded.set(body.subarray(0, padded.byteLength))
      padded.fill(random() < 0.5 ? 0x20 : 0, body.byteLength)
      return sent(kind, replace(padded))
    }
    case 'stall': {
      const messages = all(bodies)
      const whole = Buffer.concat(messages)
      const cut = 1 + below(random, Math.max(1, whole.byteLength - 1))
      let boundary = 0
      for (const message of messages) if (boundary < cut) boundary += message.byteLength
      return { name: kind, chunks: [whole.subarray(0, cut)], stall: true, midway: boundary !== cut }
    }
    case 'field': {
      if (valid.protocol === SYNC_PROTOCOL) {
        // the type, the document id's length or the document id of the sync message
        const copy = Uint8Array.from(body)
        copy[below(random, Math.min(copy.byteLength, 12))] = below(random, 256)
        return sent('header', replace(copy))
      }
      let value: unknown
      try {
        value = JSON.parse(Buffer.from(body).toString('utf8'))
      } catch {
        return sent('flip', replace(flipBits(body, random)))
      }
      return sent(kind, replace(Buffer.from(JSON.stringify(mutateJson(value, random)))))
    }
    case 'varint': {
      // A length or count inside the payload set huge: Yjs and JSON alike hold numbers a decoder may trust.
      const copy = Buffer.from(body)
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]).copy(copy, below(random, Math.max(1, copy.byteLength - 5)))
      return sent(kind, replace(copy))
    }
    case 'split': {
      // Valid, sent in up to 16 pieces.
      const whole = Buffer.concat(all(bodies))
      const piece = Math.max(1, Math.ceil(whole.byteLength / 16))
      const pieces: Uint8Array[] = []
      for (let at = 0; at < whole.byteLength; at += piece) pieces.push(whole.subarray(at, at + piece))
      return sent(kind, pieces)
    }
    default:
      return sent('valid', all(bodies))
  }
}
