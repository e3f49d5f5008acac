/**
 * `/radmesh/sync/1.0.0`: Yjs document sync between two members, y-protocols style, with the document named
 * in each message (y-protocols messages carry no document name).
 *
 * Each member opens one long-lived stream to each member it shares documents with and sends on it; it
 * receives on the stream the other opened. Messages are length-prefixed (unsigned varint, as lpStream
 * writes them), then:
 *
 *   u8 type | varint docId length | docId (UTF-8) | payload
 *
 *   type 0  step 1: the sender's state vector of the document (Y.encodeStateVector); "send me what I lack"
 *   type 1  step 2: the update the receiver of a step 1 lacked (Y.encodeStateAsUpdate(doc, stateVector))
 *   type 2  update: a change made or accepted by the sender since
 *   type 3  awareness: who has a report open and where their cursor is (y-protocols/awareness update:
 *           varuint count, then per client varuint clientID, varuint clock, JSON state), never stored;
 *           a member only relays states of Yjs clients bound to itself or to the member it came from
 *
 * A step 1 is answered with a step 2 on the answerer's own stream. Members send a step 1 for every shared
 * document when they connect and every few seconds after (anti-entropy: what was missed or refused for
 * now arrives then). Document ids: `worklist`, and `report:CASEID` for the report of a case.
 */
import { MalformedMessageError } from '../errors.ts'
import { isCaseId } from './records.ts'

export const SYNC_PROTOCOL = '/radmesh/sync/1.0.0'
export const WORKLIST_DOC = 'worklist'
export const REPORT_DOC_PREFIX = 'report:'

export const SYNC_MESSAGE = { step1: 0, step2: 1, update: 2, awareness: 3 } as const
export type SyncMessageType = (typeof SYNC_MESSAGE)[keyof typeof SYNC_MESSAGE]

/** A live update: one edit, or a burst of typing. */
export const MAX_UPDATE_BYTES = 256 * 1024
/** A step 2 carries a whole document to a member that has none of it. */
export const MAX_STEP2_BYTES = 16 * 1024 * 1024
export const MAX_STATE_VECTOR_BYTES = 64 * 1024
/** Presence of the few readers of one report: names and cursor positions. */
export const MAX_AWARENESS_BYTES = 8 * 1024
export const MAX_DOC_ID_BYTES = 64
export const MAX_SYNC_MESSAGE_BYTES = 1 + 1 + MAX_DOC_ID_BYTES + MAX_STEP2_BYTES
/** How often members send a step 1 for every document they share. */
export const RESYNC_INTERVAL_MS = 5_000
/**
 * A member's step 1 for one document is answered at most this often. An honest member sends one per
 * resync, and one when a case's members change; more is a flood, and each answer is the whole difference.
 */
export const STEP1_ANSWER_INTERVAL_MS = 1_000
/** A message once started must be whole within this time: a 16 MiB step 2 at 10 Mbit/s takes 14 s. */
export const SYNC_MESSAGE_TIMEOUT_MS = 60_000

export interface SyncMessage { type: SyncMessageType, docId: string, payload: Uint8Array }

export const reportDocId = (caseId: string): string => `${REPORT_DOC_PREFIX}${caseId}`

/** The case a document id names, or undefined for the worklist; throws for an id no radmesh writes. */
export function caseOfDoc (docId: string): string | undefined {
  if (docId === WORKLIST_DOC) return undefined
  const caseId = docId.slice(REPORT_DOC_PREFIX.length)
  if (!docId.startsWith(REPORT_DOC_PREFIX) || !isCaseId(caseId)) throw new MalformedMessageError(`sync document "${docId.slice(0, 80)}" is not one this radmesh knows`)
  return caseId
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encodeSyncMessage ({ type, docId, payload }: SyncMessage): Uint8Array {
  const id = encoder.encode(docId)
  if (id.byteLength > MAX_DOC_ID_BYTES) throw new RangeError(`document id ${docId} is longer than ${MAX_DOC_ID_BYTES} bytes`)
  const out = new Uint8Array(2 + id.byteLength + payload.byteLength)
  out[0] = type
  out[1] = id.byteLength
  out.set(id, 2)
  out.set(payload, 2 + id.byteLength)
  return out
}

export function decodeSyncMessage (bytes: Uint8Array): SyncMessage {
  if (bytes.byteLength < 2) throw new MalformedMessageError('a sync message is at least 2 bytes')
  const type = bytes[0] as number
  if (type !== SYNC_MESSAGE.step1 && type !== SYNC_MESSAGE.step2 && type !== SYNC_MESSAGE.update && type !== SYNC_MESSAGE.awareness) throw new MalformedMessageError(`sync message type ${type} is not one this radmesh knows`)
  const idLength = bytes[1] as number
  if (idLength === 0 || idLength > MAX_DOC_ID_BYTES || bytes.byteLength < 2 + idLength) throw new MalformedMessageError('sync message document id is missing or too long')
  let docId: string
  try {
    docId = decoder.decode(bytes.subarray(2, 2 + idLength))
  } catch {
    throw new MalformedMessageError('sync message document id is not UTF-8')
  }
  caseOfDoc(docId)
  const payload = bytes.subarray(2 + idLength)
  const limit = type === SYNC_MESSAGE.step1 ? MAX_STATE_VECTOR_BYTES : type === SYNC_MESSAGE.step2 ? MAX_STEP2_BYTES : type === SYNC_MESSAGE.awareness ? MAX_AWARENESS_BYTES : MAX_UPDATE_BYTES
  if (payload.byteLength > limit) throw new MalformedMessageError(`sync message payload is ${payload.byteLength} bytes; the limit for this type is ${limit}`)
  return { type: type as SyncMessageType, docId, payload }
}
