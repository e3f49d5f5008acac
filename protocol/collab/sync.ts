/**
 * `/radmesh/sync/2.0.0`: Yjs document sync between two members, y-protocols style, with the document named
 * in each message (y-protocols messages carry no document name), and anti-entropy by digests.
 *
 * Each member opens one long-lived stream to each member it shares documents with and sends on it; it
 * receives on the stream the other opened. Messages are length-prefixed (unsigned varint, as lpStream
 * writes them), then:
 *
 *   u8 type | u8 docId length | docId (UTF-8) | payload
 *
 *   type 0  step 1: the sender's state vector of the document (Y.encodeStateVector); "send me what I lack"
 *   type 1  step 2: (part of) the update the receiver of a step 1 lacked; a large one comes in several, each
 *           holding one author's (Yjs client's) part, each at most MAX_STEP2_BYTES
 *   type 2  update: a change made or accepted by the sender since
 *   type 3  awareness: who has a report open and where their cursor is (y-protocols/awareness update:
 *           varuint count, then per client varuint clientID, varuint clock, JSON state), never stored;
 *           a member only relays states of Yjs clients bound to itself or to the member it came from
 *   type 4  digest (no document id): varuint count | 32 bytes: the SHA-256 over the live documents the sender
 *           shares with the receiver, each as its id and its state hash (`docStateHash`), in id order.
 *           Equal: in step, nothing more is said. Different: the receiver answers with an inventory.
 *   type 5  inventory (no document id): varuint flags (1 = an answer to an inventory, 2 = the last page) |
 *           varuint n | n x (u8 id length | id | 16-byte state hash). Each side, given the other's
 *           inventory, sends a step 1 for every document listed that it lacks or holds in another state,
 *           and answers a first inventory with its own (flag 1), so both learn what each lacks.
 *
 * Document ids: `members` (member certificates and duty shifts: every member), `case:CASEID` (one case's
 * records: its site, readers and consultants), `report:CASEID` (its report: the site and the case's
 * readers on it). A document is "live" while its case is open or changed in the last days; digests cover
 * live documents only, so a year of closed cases costs nothing. Each member sends a digest to a few members
 * per round (RESYNC_PEERS every RESYNC_INTERVAL_MS, in turn) and to each member it connects to: what a node
 * spends when nothing changes does not grow with the size of the consortium.
 */
import { MalformedMessageError } from '../errors.ts'
import { isCaseId } from './records.ts'

export const SYNC_PROTOCOL = '/radmesh/sync/2.0.0'
export const MEMBERS_DOC = 'members'
export const CASE_DOC_PREFIX = 'case:'
export const REPORT_DOC_PREFIX = 'report:'

export const SYNC_MESSAGE = { step1: 0, step2: 1, update: 2, awareness: 3, digest: 4, inventory: 5 } as const
export type SyncMessageType = (typeof SYNC_MESSAGE)[keyof typeof SYNC_MESSAGE]

/** A live update: one edit, or a burst of typing. */
export const MAX_UPDATE_BYTES = 256 * 1024
/**
 * A step 2 message is at most this, within every reader's 4 MiB read buffer: a larger difference goes in one
 * message per author (Yjs client). A case document is a few kilobytes; one author's part of a report (its
 * edits and signatures) fits far within this.
 */
export const MAX_STEP2_BYTES = 4 * 1024 * 1024 - 1024
export const MAX_STATE_VECTOR_BYTES = 64 * 1024
/** Presence of the few readers of one report: names and cursor positions. */
export const MAX_AWARENESS_BYTES = 8 * 1024
export const MAX_DOC_ID_BYTES = 64
/** Entries of one inventory page: about 90 KiB. */
export const MAX_INVENTORY_ENTRIES = 1024
export const STATE_HASH_BYTES = 16
export const DIGEST_BYTES = 32
const MAX_INVENTORY_BYTES = 8 + MAX_INVENTORY_ENTRIES * (1 + MAX_DOC_ID_BYTES + STATE_HASH_BYTES)
export const MAX_SYNC_MESSAGE_BYTES = 1 + 1 + MAX_DOC_ID_BYTES + MAX_STEP2_BYTES
/** How often a node sends digests, and to how many members each time (in turn). */
export const RESYNC_INTERVAL_MS = 5_000
export const RESYNC_PEERS = 3
/**
 * A member's step 1 for one document is answered at most this often. An honest member sends one per
 * inventory, and one when a case's members change; more is a flood, and each answer is the whole difference.
 */
export const STEP1_ANSWER_INTERVAL_MS = 1_000
/** A member's digest or first inventory is answered at most this often. */
export const DIGEST_ANSWER_INTERVAL_MS = 1_000
/** A message once started must be whole within this time: a 4 MiB step 2 at 2 Mbit/s takes 17 s. */
export const SYNC_MESSAGE_TIMEOUT_MS = 60_000

export interface SyncMessage {
  type: SyncMessageType
  docId: string
  payload: Uint8Array
}

export const caseDocId = (caseId: string): string => `${CASE_DOC_PREFIX}${caseId}`
export const reportDocId = (caseId: string): string => `${REPORT_DOC_PREFIX}${caseId}`

export type DocKind = { kind: 'members' } | { kind: 'case'; caseId: string } | { kind: 'report'; caseId: string }

/** What a document id names; throws MalformedMessageError for an id no radmesh writes. */
export function docKind(docId: string): DocKind {
  if (docId === MEMBERS_DOC) return { kind: 'members' }
  for (const [prefix, kind] of [
    [CASE_DOC_PREFIX, 'case'],
    [REPORT_DOC_PREFIX, 'report']
  ] as const) {
    if (!docId.startsWith(prefix)) continue
    const caseId = docId.slice(prefix.length)
    if (isCaseId(caseId)) return { kind, caseId }
  }
  throw new MalformedMessageError(`sync document "${docId.slice(0, 80)}" is not one this radmesh knows`)
}

/** The case a document id names, or undefined for the members document. */
export const caseOfDoc = (docId: string): string | undefined => {
  const kind = docKind(docId)
  return kind.kind === 'members' ? undefined : kind.caseId
}

const withoutId = (type: number): boolean => type === SYNC_MESSAGE.digest || type === SYNC_MESSAGE.inventory

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encodeSyncMessage({ type, docId, payload }: SyncMessage): Uint8Array {
  const id = encoder.encode(withoutId(type) ? '' : docId)
  if (id.byteLength > MAX_DOC_ID_BYTES)
    throw new RangeError(`document id ${docId} is longer than ${MAX_DOC_ID_BYTES} bytes`)
  const out = new Uint8Array(2 + id.byteLength + payload.byteLength)
  out[0] = type
  out[1] = id.byteLength
  out.set(id, 2)
  out.set(payload, 2 + id.byteLength)
  return out
}

export function decodeSyncMessage(bytes: Uint8Array): SyncMessage {
  if (bytes.byteLength < 2) throw new MalformedMessageError('a sync message is at least 2 bytes')
  const type = bytes[0] as number
  if (!(Object.values(SYNC_MESSAGE) as number[]).includes(type))
    throw new MalformedMessageError(`sync message type ${type} is not one this radmesh knows`)
  const idLength = bytes[1] as number
  let docId = ''
  if (withoutId(type)) {
    if (idLength !== 0) throw new MalformedMessageError('a digest or inventory names no document')
  } else {
    if (idLength === 0 || idLength > MAX_DOC_ID_BYTES || bytes.byteLength < 2 + idLength)
      throw new MalformedMessageError('sync message document id is missing or too long')
    try {
      docId = decoder.decode(bytes.subarray(2, 2 + idLength))
    } catch {
      throw new MalformedMessageError('sync message document id is not UTF-8')
    }
    docKind(docId)
  }
  const payload = bytes.subarray(2 + idLength)
  const limit =
    type === SYNC_MESSAGE.step1
      ? MAX_STATE_VECTOR_BYTES
      : type === SYNC_MESSAGE.step2
        ? MAX_STEP2_BYTES
        : type === SYNC_MESSAGE.awareness
          ? MAX_AWARENESS_BYTES
          : type === SYNC_MESSAGE.digest
            ? 16 + DIGEST_BYTES
            : type === SYNC_MESSAGE.inventory
              ? MAX_INVENTORY_BYTES
              : MAX_UPDATE_BYTES
  if (payload.byteLength > limit)
    throw new MalformedMessageError(
      `sync message payload is ${payload.byteLength} bytes; the limit for this type is ${limit}`
    )
  return { type: type as SyncMessageType, docId, payload }
}

/** A digest: how many live documents the sender shares with the receiver, and the SHA-256 over their states. */
export interface Digest {
  count: number
  hash: Uint8Array
}

export interface InventoryEntry {
  docId: string
  stateHash: Uint8Array
}
export interface Inventory {
  answer: boolean
  last: boolean
  entries: InventoryEntry[]
}

function writeVarUint(out: number[], value: number): void {
  let v = value
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
}

function readVarUint(bytes: Uint8Array, at: { offset: number }, what: string): number {
  let value = 0
  let factor = 1
  for (let i = 0; i < 5; i++) {
    const byte = bytes[at.offset++]
    if (byte === undefined) throw new MalformedMessageError(`${what} is cut short`)
    value += (byte & 0x7f) * factor
    if ((byte & 0x80) === 0) return value
    factor *= 128
  }
  throw new MalformedMessageError(`${what}: a number longer than 5 bytes`)
}

export function encodeDigest({ count, hash }: Digest): Uint8Array {
  if (hash.byteLength !== DIGEST_BYTES) throw new RangeError(`a digest hash is ${DIGEST_BYTES} bytes`)
  const head: number[] = []
  writeVarUint(head, count)
  const out = new Uint8Array(head.length + DIGEST_BYTES)
  out.set(head)
  out.set(hash, head.length)
  return out
}

export function decodeDigest(payload: Uint8Array): Digest {
  const at = { offset: 0 }
  const count = readVarUint(payload, at, 'a digest')
  if (payload.byteLength - at.offset !== DIGEST_BYTES)
    throw new MalformedMessageError(`a digest hash must be ${DIGEST_BYTES} bytes`)
  return { count, hash: payload.subarray(at.offset) }
}

export function encodeInventory({ answer, last, entries }: Inventory): Uint8Array {
  if (entries.length > MAX_INVENTORY_ENTRIES)
    throw new RangeError(`an inventory page holds at most ${MAX_INVENTORY_ENTRIES} entries`)
  const out: number[] = []
  writeVarUint(out, (answer ? 1 : 0) | (last ? 2 : 0))
  writeVarUint(out, entries.length)
  for (const { docId, stateHash } of entries) {
    const id = encoder.encode(docId)
    if (id.byteLength === 0 || id.byteLength > MAX_DOC_ID_BYTES)
      throw new RangeError(`document id ${docId} is not 1 to ${MAX_DOC_ID_BYTES} bytes`)
    if (stateHash.byteLength !== STATE_HASH_BYTES) throw new RangeError(`a state hash is ${STATE_HASH_BYTES} bytes`)
    out.push(id.byteLength, ...id, ...stateHash)
  }
  return Uint8Array.from(out)
}

export function decodeInventory(payload: Uint8Array): Inventory {
  const at = { offset: 0 }
  const flags = readVarUint(payload, at, 'an inventory')
  if (flags > 3) throw new MalformedMessageError(`inventory flags ${flags} are not ones this radmesh knows`)
  const n = readVarUint(payload, at, 'an inventory')
  if (n > MAX_INVENTORY_ENTRIES)
    throw new MalformedMessageError(`an inventory page of ${n} entries (at most ${MAX_INVENTORY_ENTRIES})`)
  const entries: InventoryEntry[] = []
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const length = payload[at.offset++]
    if (
      length === undefined ||
      length === 0 ||
      length > MAX_DOC_ID_BYTES ||
      at.offset + length + STATE_HASH_BYTES > payload.byteLength
    ) {
      throw new MalformedMessageError('an inventory entry is cut short or its id is too long')
    }
    let docId: string
    try {
      docId = decoder.decode(payload.subarray(at.offset, at.offset + length))
    } catch {
      throw new MalformedMessageError('an inventory document id is not UTF-8')
    }
    docKind(docId)
    if (seen.has(docId)) throw new MalformedMessageError(`document ${docId} is twice in one inventory page`)
    seen.add(docId)
    at.offset += length
    entries.push({ docId, stateHash: payload.subarray(at.offset, at.offset + STATE_HASH_BYTES) })
    at.offset += STATE_HASH_BYTES
  }
  if (at.offset !== payload.byteLength) throw new MalformedMessageError('an inventory has bytes after its last entry')
  return { answer: (flags & 1) !== 0, last: (flags & 2) !== 0, entries }
}
