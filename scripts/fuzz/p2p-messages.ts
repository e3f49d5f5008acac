/**
 * What a p2p fuzz case sends (./p2p.ts runs the cases): a valid message of one of the `/radmesh/*` protocols,
 * built with the protocol/ encoders or from the site's own state, then mutated: bit flips, truncation, length
 * prefixes set huge or short, duplication, replay, reordering, oversize, a stall, fields set huge or of the
 * wrong type. Every choice comes from a generator seeded from (seed, case), so a case replays on its own.
 */
import * as Y from 'yjs'
import { signReportRecord } from '../../node/reports/records.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import { encodeLength } from '../../node/p2p/wire.ts'
import {
  type BindingRecord,
  recordKey,
  type ReportSignatureRecord,
  SECTION_NAMES,
  type Sections
} from '../../protocol/collab/records.ts'
import {
  caseDocId,
  encodeSyncMessage,
  MEMBERS_DOC,
  reportDocId,
  SYNC_MESSAGE,
  SYNC_MESSAGE_TIMEOUT_MS,
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import {
  ANNOUNCE_PROTOCOL,
  CHUNKS_PROTOCOL,
  encodeAnnouncement,
  encodeChunkRequest,
  encodeManifestRequest,
  EXCHANGE_TIMEOUT_MS,
  MANIFEST_PROTOCOL
} from '../../protocol/exchange/messages.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import {
  encodeRevocationList,
  REVOCATIONS_PROTOCOL,
  REVOCATIONS_TIMEOUT_MS
} from '../../protocol/membership/revocations.ts'
import { type BadMember, framed, makeVersion } from '../lib/bad-member.ts'
import { changeOf, firstMessage, recordsUpdate, SECTIONS, type Site } from './p2p-site.ts'

// A generator per case, from (seed, case): a case replays on its own.
type Random = () => number
export function generator(seed: number, index: number): Random {
  let state = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const below = (random: Random, n: number): number => Math.floor(random() * n)
const pick = <T>(random: Random, list: readonly T[]): T => list[below(random, list.length)] as T

// The valid messages a member starts from, per protocol: each a list of messages sent on one stream.

export type Protocol =
  | typeof MANIFEST_PROTOCOL
  | typeof CHUNKS_PROTOCOL
  | typeof ANNOUNCE_PROTOCOL
  | typeof SYNC_PROTOCOL
  | typeof REVOCATIONS_PROTOCOL
interface Valid {
  protocol: Protocol
  name: string
  messages: Uint8Array[]
}

/** Whether an answer is an error answer: a manifest status other than ok, a not-held frame, a refusal. */
export function errorAnswer(protocol: Protocol, reply: Uint8Array): boolean {
  const body = firstMessage(reply)
  if (body === undefined || body.byteLength === 0) return false
  if (protocol === CHUNKS_PROTOCOL) return body[0] !== 0
  return /"status":"(unknown-study|refused)"/.test(Buffer.from(body).toString('utf8'))
}

const sync = (name: string, docId: string, type: SyncMessage['type'], payload: Uint8Array): Valid => ({
  protocol: SYNC_PROTOCOL,
  name,
  messages: [encodeSyncMessage({ type, docId, payload })]
})
const emptyState = (): Uint8Array => Y.encodeStateVector(new Y.Doc())

export async function validMessages(site: Site, member: BadMember, random: Random): Promise<Valid> {
  const { manifest, studyUid, caseId } = site
  const me = member.identity
  const by = me.peerId
  const at = new Date().toISOString()
  const chunks = manifest.chunkHashes.length
  const versionId = manifest.versionId
  const chunk = (index: number, offset = 0): Uint8Array => encodeChunkRequest({ studyUid, versionId, index, offset })
  const announce = async (name: string, uid: string): Promise<Valid> => {
    const { consortiumId } = manifest
    const recipient = site.node.peerId
    const made = await makeVersion(me, { consortiumId, studyUid: uid, recipient, recipientWrapKey: site.wrapKey })
    const messages = [encodeAnnouncement({ manifest: made.manifest, wraps: [made.wrap] })]
    return { protocol: ANNOUNCE_PROTOCOL, name, messages }
  }
  const report = reportDocId(caseId)
  const update = SYNC_MESSAGE.update
  const makers: Array<() => Promise<Valid>> = [
    async () => ({ protocol: MANIFEST_PROTOCOL, name: 'manifest', messages: [encodeManifestRequest({ studyUid })] }),
    async () => {
      const messages = [encodeManifestRequest({ studyUid, knownVersion: versionId })]
      return { protocol: MANIFEST_PROTOCOL, name: 'manifest request, version known', messages }
    },
    async () => ({ protocol: CHUNKS_PROTOCOL, name: 'one chunk', messages: [chunk(below(random, chunks))] }),
    async () => {
      const messages = Array.from({ length: chunks }, (_, i) => chunk(i))
      return { protocol: CHUNKS_PROTOCOL, name: 'every chunk', messages }
    },
    async () => {
      const messages = [chunk(chunks - 1, below(random, manifest.chunkSizes[chunks - 1] ?? 1))]
      return { protocol: CHUNKS_PROTOCOL, name: 'chunk from an offset', messages }
    },
    async () => await announce('announcement of a study of its own', `${studyUid}.${below(random, 1e6)}`),
    async () => await announce("announcement of the site's study", studyUid),
    async () => ({ protocol: REVOCATIONS_PROTOCOL, name: 'revocations the site has', messages: [site.revocations] }),
    async () => ({ protocol: REVOCATIONS_PROTOCOL, name: 'no revocations', messages: [encodeRevocationList([])] }),
    async () => sync('step 1 of the members document', MEMBERS_DOC, SYNC_MESSAGE.step1, emptyState()),
    async () => sync('step 1 of the case', caseDocId(caseId), SYNC_MESSAGE.step1, emptyState()),
    async () => sync('step 1 of the report', report, SYNC_MESSAGE.step1, emptyState()),
    async () => sync("the site's case replayed", caseDocId(caseId), SYNC_MESSAGE.step2, site.worklistState),
    async () => {
      const shifts = [{ start: at, end: new Date(Date.now() + 3600_000).toISOString() }]
      const duty = await signWorklistRecord(me.privateKey, { v: 1, kind: 'duty', shifts, by, at })
      return sync('a duty record', MEMBERS_DOC, update, recordsUpdate([duty]))
    },
    async () => {
      const claim = await signWorklistRecord(me.privateKey, { v: 1, kind: 'claim', caseId, seq: 2, by, at })
      return sync('a late claim', caseDocId(caseId), update, recordsUpdate([claim]))
    },
    async () => {
      // Rule breakers built whole: a cancel by a radiologist, a claim signed as another, a record gone or changed.
      const cancel = await signWorklistRecord(me.privateKey, { v: 1, kind: 'cancel', caseId, reason: 'fuzz', by, at })
      const claim = await signWorklistRecord(me.privateKey, { v: 1, kind: 'claim', caseId, seq: 1, by, at })
      const forged = { ...claim, by: site.prober.peerId }
      const first = (doc: Y.Doc): string => [...doc.getMap('records').keys()][0] as string
      return pick(random, [
        sync('a cancel by a radiologist', caseDocId(caseId), update, recordsUpdate([cancel])),
        sync('a claim signed as another', caseDocId(caseId), update, recordsUpdate([forged])),
        sync(
          'a record deleted',
          caseDocId(caseId),
          update,
          changeOf(site.worklistState, doc => {
            doc.getMap('records').delete(first(doc))
          })
        ),
        sync(
          'a record overwritten',
          caseDocId(caseId),
          update,
          changeOf(site.worklistState, doc => {
            doc.getMap('records').set(first(doc), forged)
          })
        )
      ])
    },
    async () => {
      // The report (shared with the readers only): a new client of this member bound, with an edit of the
      // FINAL text, an addendum, or a signature made as the prober; or its presence.
      const clientId = 1 + below(random, 0xfffffff)
      const key = me.privateKey
      const binding: BindingRecord = await signReportRecord(key, { v: 1, kind: 'binding', caseId, clientId, by, at })
      const empty = Object.fromEntries(SECTION_NAMES.map(name => [name, ''])) as Sections
      const addendum = await signReportRecord(key, {
        v: 1,
        kind: 'report-signature',
        caseId,
        studyUid,
        status: 'ADDENDUM',
        sections: empty,
        text: 'Addendum.',
        by,
        at
      })
      const sections = { ...SECTIONS, impression: 'FORGED' }
      const final = await signReportRecord(key, {
        v: 1,
        kind: 'report-signature',
        caseId,
        studyUid,
        status: 'FINAL',
        sections,
        text: '',
        by,
        at
      })
      const forged: ReportSignatureRecord = { ...final, by: site.prober.peerId as PeerIdString }
      const edit = (change: (doc: Y.Doc) => void): Uint8Array =>
        changeOf(site.reportState, doc => {
          doc.clientID = clientId
          doc.getMap('editors').set(String(clientId), binding)
          change(doc)
        })
      const presence = Uint8Array.from([1, ...encodeLength(clientId), 1, ...encodeLength(2), ...Buffer.from('{}')])
      return pick(random, [
        sync(
          'an edit of the FINAL report',
          report,
          update,
          edit(doc => {
            doc.getText('findings').insert(0, 'TAMPERED ')
          })
        ),
        sync(
          'an addendum',
          report,
          update,
          edit(doc => {
            doc.getMap('signatures').set(recordKey(addendum), addendum)
          })
        ),
        sync(
          'a signature as another',
          report,
          update,
          edit(doc => {
            doc.getMap('signatures').set(recordKey(forged), forged)
          })
        ),
        sync('presence', report, SYNC_MESSAGE.awareness, presence)
      ])
    }
  ]
  return await pick(random, makers)()
}

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
  [ANNOUNCE_PROTOCOL]: EXCHANGE_TIMEOUT_MS,
  [SYNC_PROTOCOL]: SYNC_MESSAGE_TIMEOUT_MS,
  [REVOCATIONS_PROTOCOL]: REVOCATIONS_TIMEOUT_MS
}

/** The largest message each protocol takes (a sync update's; an announcement's read buffer). */
const LIMIT_OF: Record<Protocol, number> = {
  [MANIFEST_PROTOCOL]: 512,
  [CHUNKS_PROTOCOL]: 512,
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
