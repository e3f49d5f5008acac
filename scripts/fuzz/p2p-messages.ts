/**
 * What a p2p fuzz case sends (./p2p.ts runs the cases): a valid message of one of the `/radmesh/*` protocols,
 * built with the protocol/ encoders or from the site's own state, then mutated (./p2p-mutate.ts). Every choice
 * comes from a generator seeded from (seed, case), so a case replays on its own.
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
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import {
  ANNOUNCE_PROTOCOL,
  CHUNKS_PROTOCOL,
  encodeAnnouncement,
  encodeChunkRequest,
  encodeManifestRequest,
  MANIFEST_PROTOCOL
} from '../../protocol/exchange/messages.ts'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { encodeRevocationList, REVOCATIONS_PROTOCOL } from '../../protocol/membership/revocations.ts'
import { type BadMember, makeVersion } from '../lib/bad-member.ts'
import { changeOf, firstMessage, recordsUpdate, SECTIONS, type Site } from './p2p-site.ts'

// A generator per case, from (seed, case): a case replays on its own.
export type Random = () => number
export function generator(seed: number, index: number): Random {
  let state = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
export const below = (random: Random, n: number): number => Math.floor(random() * n)
export const pick = <T>(random: Random, list: readonly T[]): T => list[below(random, list.length)] as T

// The valid messages a member starts from, per protocol: each a list of messages sent on one stream.

export type Protocol =
  | typeof MANIFEST_PROTOCOL
  | typeof CHUNKS_PROTOCOL
  | typeof CHUNKS_PROTOCOL_2
  | typeof ANNOUNCE_PROTOCOL
  | typeof SYNC_PROTOCOL
  | typeof REVOCATIONS_PROTOCOL
export interface Valid {
  protocol: Protocol
  name: string
  messages: Uint8Array[]
}

/** Whether an answer is an error answer: a manifest status other than ok, a not-held frame, a refusal. */
export function errorAnswer(protocol: Protocol, reply: Uint8Array): boolean {
  const body = firstMessage(reply)
  if (body === undefined || body.byteLength === 0) return false
  // Both chunks protocols answer in frames whose first byte is the status (0: data).
  if (protocol === CHUNKS_PROTOCOL || protocol === CHUNKS_PROTOCOL_2) return body[0] !== 0
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
  const chunksProtocol = (): Protocol => pick(random, [CHUNKS_PROTOCOL, CHUNKS_PROTOCOL_2])
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
    // The same requests on either chunks protocol: 2.0.0 answers in frames that also say the chunk's form.
    async () => ({ protocol: chunksProtocol(), name: 'one chunk', messages: [chunk(below(random, chunks))] }),
    async () => {
      const messages = Array.from({ length: chunks }, (_, i) => chunk(i))
      return { protocol: chunksProtocol(), name: 'every chunk', messages }
    },
    async () => {
      const messages = [chunk(chunks - 1, below(random, manifest.chunkSizes[chunks - 1] ?? 1))]
      return { protocol: chunksProtocol(), name: 'chunk from an offset', messages }
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
