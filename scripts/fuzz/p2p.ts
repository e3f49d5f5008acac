/**
 * The p2p fuzzer (`npm run fuzz -- p2p`): a real site process holding a small shared study, with a case on
 * its worklist whose report is FINAL, and malicious members in this process (radmesh's own libp2p host,
 * each with a real certificate, so they pass the handshake). Case by case, a member takes a valid message
 * of one of the `/radmesh/*` protocols (built with the protocol/ encoders, or captured from the site's own
 * traffic), mutates it with a generator seeded from (seed, case) (bit flips, truncation, length prefixes
 * set huge, fields set huge or of the wrong type, duplication, replay, reordering, oversize, stall) and
 * sends it. Each case is one of:
 *
 *   refused   the site reset the stream, gave an error answer, or logged a refusal code for the member
 *   accepted  taken as valid (a mutation can leave a message valid), or held back without a penalty (it may
 *             be an honest race), or, for a stream left stalled, not refused within the 150 ms the case waits
 *   crashed   the site process is gone (it is restarted, and the run goes on)
 *   hung      no end of the stream in 5 s, /api/health slower than 1 s, a well-behaved member's request
 *             unanswered, or a stream stalled midway that the site has not ended 5 s past its protocol's
 *             time limit (one such stream is kept open and watched at a time)
 *   lost      an instance of the study missing or altered through WADO-RS, or the case or its FINAL report
 *             changed (valid records may add: an addendum adds its SR to the study)
 *
 * A member the site bans is replaced by another: first the case's readers admitted at the start (they are
 * editors of its report, so report rules get tried), then members admitted on the spot.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { Stream } from '@libp2p/interface'
import * as Y from 'yjs'
import { reportHash } from '../../node/reports/document.ts'
import { signReportRecord } from '../../node/reports/records.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import { openConsortium, revoke } from '../../node/membership/consortium.ts'
import { REFUSAL_CODES } from '../../node/p2p/penalties.ts'
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
import type { StudyManifest } from '../../protocol/exchange/manifest.ts'
import {
  ANNOUNCE_PROTOCOL,
  CHUNKS_PROTOCOL,
  decodeManifestResponse,
  encodeAnnouncement,
  encodeChunkRequest,
  encodeManifestRequest,
  EXCHANGE_TIMEOUT_MS,
  MANIFEST_PROTOCOL
} from '../../protocol/exchange/messages.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { MemberCertificate } from '../../protocol/membership/certificate.ts'
import {
  encodeRevocationList,
  REVOCATIONS_PROTOCOL,
  REVOCATIONS_TIMEOUT_MS
} from '../../protocol/membership/revocations.ts'
import { BadMember, type Exchanged, framed, makeVersion } from '../lib/bad-member.ts'
import { createScratchConsortium, type ScratchConsortium } from '../lib/consortium.ts'
import { storescu } from '../lib/dcmtk.ts'
import { p2pAddr, type StartedNode, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { generateCt } from '../generate-ct.ts'
import { emptyTally, type FuzzFinding, type FuzzOptions, type FuzzTally } from './tally.ts'

export interface P2pFuzzOptions extends FuzzOptions {
  /** the first case's index: `from: N, cases: 1` replays case N of the seed */
  from?: number
}

/** What a p2p run reports besides the common tally. */
export interface P2pFuzzTally extends FuzzTally {
  /** the site's peak resident memory over the run (VmHWM) */
  peakRssMb: number
  /** members admitted over the run (a banned member is replaced) */
  identities: number
  /** said when the site's memory went over 1 GB */
  overMemory: string[]
}

/** The site's memory must stay under this throughout (issue 13). */
const MAX_RSS_MB = 1024

/** RADMESH_FUZZ_TRACE=1 prints every case's outcome. */
const TRACE = process.env['RADMESH_FUZZ_TRACE'] === '1'
/** A case that gets no end of its stream in this time hung the node (the issue's 5 s). */
const ANSWER_MS = 5_000
const HEALTH_MS = 1_000
/** A stalled message is left hanging this long, then the stream is reset. */
const STALL_MS = 150
/** Every so many cases, a valid request and the whole study and report are checked. */
const CHECK_EVERY = 25
/** Readers admitted before the case is published: they claim it, so they are editors of its report. */
const READERS = 3
const SECTIONS: Sections = {
  indication: 'Headache.',
  technique: 'CT head without contrast.',
  comparison: 'None.',
  findings: 'No haemorrhage.',
  impression: 'Normal CT head.'
}

// A generator per case, from (seed, case): a case replays on its own.
type Random = () => number
function generator (seed: number, index: number): Random {
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

interface Site {
  node: StartedNode
  home: string
  studyUid: string
  caseId: string
  manifest: StudyManifest
  prober: BadMember
  readers: BadMember[]
  /** the site's answer to a step 1 with an empty state vector, per document */
  worklistState: Uint8Array
  reportState: Uint8Array
  /** SHA-256 of each instance as WADO-RS serves it, sorted */
  instances: string[]
  /** the site's certified X25519 key: versions announced to it wrap their key for it */
  wrapKey: string
  revocations: Uint8Array
  logOffset: number
}

interface CaseView { caseId: string, studyInstanceUid: string, site: string, status: string, claimedBy: string | null }
interface ReportView {
  status: string
  sections: Sections
  signatures: Array<{ peerId: string, status: string, verified: boolean }>
}

// Length-prefixed messages, as the member sees them come back

/** The body of the first length-prefixed message in `bytes`, when it is whole. */
function firstMessage (bytes: Uint8Array): Uint8Array | undefined {
  let length = 0
  let at = 0
  for (let scale = 1; at < bytes.byteLength; scale *= 128) {
    const byte = bytes[at++] as number
    length += (byte & 0x7f) * scale
    if ((byte & 0x80) === 0) return at + length <= bytes.byteLength ? bytes.subarray(at, at + length) : undefined
  }
  return undefined
}
const wholeMessage = (bytes: Uint8Array): boolean => firstMessage(bytes) !== undefined

/** Whether an answer is an error answer: a manifest status other than ok, a not-held frame, a refusal. */
function errorAnswer (protocol: Protocol, reply: Uint8Array): boolean {
  const body = firstMessage(reply)
  if (body === undefined || body.byteLength === 0) return false
  if (protocol === CHUNKS_PROTOCOL) return body[0] !== 0
  return /"status":"(unknown-study|refused)"/.test(Buffer.from(body).toString('utf8'))
}

// What the site holds, and what must not change

/** The parts of a multipart/related body, by the boundary its content type names. */
function multipartParts (body: Buffer, contentType: string): Buffer[] {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1]
  if (boundary === undefined) throw new Error(`no boundary in ${contentType}`)
  const delimiter = Buffer.from(`--${boundary}`)
  const parts: Buffer[] = []
  let at = body.indexOf(delimiter)
  while (at >= 0) {
    const next = body.indexOf(delimiter, at + delimiter.byteLength)
    if (next < 0) break
    const part = body.subarray(at + delimiter.byteLength, next)
    const headersEnd = part.indexOf('\r\n\r\n')
    if (headersEnd >= 0) parts.push(part.subarray(headersEnd + 4, part.byteLength - 2))
    at = next
  }
  return parts
}

/** SHA-256 of every instance of the study as WADO-RS serves it, sorted. */
async function studyHashes (node: StartedNode, studyUid: string): Promise<string[]> {
  const accept = 'multipart/related; type="application/dicom"'
  const signal = AbortSignal.timeout(ANSWER_MS)
  const response = await node.fetch(`/dicom-web/studies/${studyUid}`, { headers: { accept }, signal })
  if (response.status !== 200) throw new Error(`WADO-RS answered ${response.status}`)
  const parts = multipartParts(Buffer.from(await response.arrayBuffer()), response.headers.get('content-type') ?? '')
  return parts.map(part => createHash('sha256').update(part).digest('hex')).sort()
}

/** What was lost: an instance, the case, its FINAL report; the empty string when all is well. */
async function whatWasLost (site: Site): Promise<string> {
  // An addendum adds a report SR to the study; what was there must stay, byte for byte.
  const hashes = new Set(await studyHashes(site.node, site.studyUid))
  const missing = site.instances.filter(hash => !hashes.has(hash)).length
  if (missing > 0) return `through WADO-RS, ${missing} of the study's ${site.instances.length} instances changed`
  const entry = (await site.node.api<CaseView[]>('GET', '/api/worklist')).body.find(c => c.caseId === site.caseId)
  if (entry === undefined) return `case ${site.caseId} is gone from the worklist`
  const same = entry.claimedBy === site.prober.peerId && entry.studyInstanceUid === site.studyUid
  if (entry.status !== 'COMPLETED' || !same) {
    return `case ${site.caseId} changed: ${JSON.stringify(entry)}`
  }
  const report = (await site.node.api<ReportView>('GET', `/api/cases/${site.caseId}/report`)).body
  if (report.status !== 'FINAL' && report.status !== 'AMENDED') return `the report is ${report.status}`
  if (JSON.stringify(report.sections) !== JSON.stringify(SECTIONS)) {
    return `the FINAL report's sections changed: ${JSON.stringify(report.sections).slice(0, 200)}`
  }
  const signed = report.signatures.some(s => s.peerId === site.prober.peerId && s.status === 'FINAL' && s.verified)
  if (!signed) return 'the FINAL signature is gone'
  const availability = await site.node.api<{ complete: boolean }>('GET', `/api/studies/${site.studyUid}/availability`)
  if (availability.body.complete !== true) return `the study's availability: ${JSON.stringify(availability.body)}`
  return ''
}

/** The site's latest version of the study, asked as any member would. */
async function latestManifest (member: BadMember, studyUid: string): Promise<StudyManifest | undefined> {
  const request = framed(encodeManifestRequest({ studyUid }))
  const options = { waitMs: ANSWER_MS, maxReply: 1 << 24, enough: wholeMessage }
  const asked = await member.send(MANIFEST_PROTOCOL, [request], options)
  const body = firstMessage(asked.reply)
  const answer = body === undefined ? undefined : decodeManifestResponse(body)
  return answer?.status === 'ok' ? answer.manifest : undefined
}

// Set-up

/** A sync stream of `messages` from `member`; waits until the site closed or reset it. */
async function sendSync (member: BadMember, messages: SyncMessage[]): Promise<Exchanged> {
  const chunks = messages.map(message => framed(encodeSyncMessage(message)))
  return await member.send(SYNC_PROTOCOL, chunks, { waitMs: ANSWER_MS })
}

/** Sends a valid update; throws unless the site took it to the end of the stream. */
async function sendUpdate (member: BadMember, docId: string, payload: Uint8Array): Promise<void> {
  const sent = await sendSync(member, [{ type: SYNC_MESSAGE.update, docId, payload }])
  if (sent.ended !== 'closed') throw new Error(`the site ${sent.ended} a valid ${docId} update from ${member.peerId}`)
}

/** A worklist update adding `records` under their keys, from a client of its own. */
function recordsUpdate (records: Array<Parameters<typeof recordKey>[0]>): Uint8Array {
  const doc = new Y.Doc()
  const map = doc.getMap('records')
  for (const record of records) map.set(recordKey(record), record)
  return Y.encodeStateAsUpdate(doc)
}

/** A copy of a document from the site's state, changed by `change`: the update that change makes. */
function changeOf (state: Uint8Array, change: (doc: Y.Doc) => void): Uint8Array {
  const doc = new Y.Doc()
  for (const name of SECTION_NAMES) doc.getText(name)
  Y.applyUpdate(doc, state)
  const before = Y.encodeStateVector(doc)
  change(doc)
  return Y.encodeStateAsUpdate(doc, before)
}

/** A peer id string that no key stands behind (base58 of the right length). */
function fakePeerId (): PeerIdString {
  const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
  return `12D3KooW${Array.from(randomBytes(44), b => alphabet[b % alphabet.length]).join('')}` as PeerIdString
}

/** Starts the site, the prober and the readers; publishes a case and makes its report FINAL. */
async function setUp (consortium: ScratchConsortium, say: (line: string) => void): Promise<Site> {
  const started = performance.now()
  const home = await consortium.member('Fuzz Site', 'site')
  const certificate = JSON.parse(await fs.readFile(join(home, 'certificate.json'), 'utf8')) as MemberCertificate
  const node = await startNode(home, { dicom: true, extraArgs: ['--stable-after', '1s'] })
  const work = await tempDir('radmesh-fuzz-')
  const prober = await BadMember.admit(consortium.dir, work, { name: 'Dr Prober', role: 'radiologist' })
  const readers: BadMember[] = []
  for (let i = 1; i <= READERS; i++) {
    readers.push(await BadMember.admit(consortium.dir, work, { name: `Dr Reader ${i}`, role: 'radiologist' }))
  }
  for (const member of [prober, ...readers]) {
    await member.connect(p2pAddr(node))
    // As every node does: its certificate in the worklist, so that sites route cases to it.
    await sendUpdate(member, MEMBERS_DOC, recordsUpdate([{ kind: 'member', certificate: member.certificate }]))
  }
  const radiologists = async (): Promise<number> => (await node.api<unknown[]>('GET', '/api/duty')).body.length
  await waitFor('the site to know the readers', async () => await radiologists() === READERS + 1, 10_000)

  const dir = await tempDir('radmesh-fuzz-study-')
  const study = await generateCt({ out: dir, slices: 3, rows: 64, columns: 64, seed: 77 })
  const stored = await storescu(node.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  if (stored.code !== 0) throw new Error(`storescu failed: ${stored.stderr}`)
  const cases = async (): Promise<CaseView[]> => (await node.api<CaseView[]>('GET', '/api/worklist')).body
  const [entry] = await waitFor('the case on the site\'s worklist', async () => {
    const list = await cases()
    return list.length === 1 ? list : undefined
  }, 15_000)
  const caseId = (entry as CaseView).caseId
  const studyUid = study.studyInstanceUid

  // The prober claims first; the readers claim after and lose, which makes them editors of the report.
  const claim = async (member: BadMember, seq: number): Promise<void> => {
    const { peerId: by, privateKey } = member.identity
    const at = new Date().toISOString()
    const record = await signWorklistRecord(privateKey, { v: 1, kind: 'claim', caseId, seq, by, at })
    await sendUpdate(member, caseDocId(caseId), recordsUpdate([record]))
  }
  await claim(prober, 1)
  await waitFor('the prober\'s claim', async () => (await cases())[0]?.claimedBy === prober.peerId, 10_000)
  for (const reader of readers) await claim(reader, 2)

  // The prober writes the report and signs it FINAL, as its node would: a binding, the sections, the signature.
  const report = new Y.Doc()
  for (const name of SECTION_NAMES) report.getText(name)
  const at = new Date().toISOString()
  const by = prober.identity.peerId
  const key = prober.identity.privateKey
  const binding = await signReportRecord(key, { v: 1, kind: 'binding', caseId, clientId: report.clientID, by, at })
  const signature = await signReportRecord(key, {
    v: 1, kind: 'report-signature', caseId, studyUid, status: 'FINAL', sections: SECTIONS, text: '', by, at
  })
  report.transact(() => {
    report.getMap('editors').set(String(report.clientID), binding)
    for (const name of SECTION_NAMES) report.getText(name).insert(0, SECTIONS[name])
    report.getMap('signatures').set(recordKey(signature), signature)
  })
  await sendUpdate(prober, reportDocId(caseId), Y.encodeStateAsUpdate(report))
  const signed = await signWorklistRecord(key, {
    v: 1, kind: 'signed', caseId, status: 'FINAL', reportHash: reportHash(caseId, studyUid, SECTIONS), by, at
  })
  await sendUpdate(prober, caseDocId(caseId), recordsUpdate([signed]))
  await waitFor('the case COMPLETED with its FINAL report', async () => (await cases())[0]?.status === 'COMPLETED' &&
    (await node.api<ReportView>('GET', `/api/cases/${caseId}/report`)).body.status === 'FINAL', 10_000)

  // Captured from the site: what it answers a member that knows nothing.
  const captured = async (docId: string): Promise<Uint8Array> => {
    await sendSync(prober, [{ type: SYNC_MESSAGE.step1, docId, payload: Y.encodeStateVector(new Y.Doc()) }])
    const answer = (): SyncMessage | undefined =>
      prober.synced.findLast(m => m.type === SYNC_MESSAGE.step2 && m.docId === docId)
    return (await waitFor(`the site's ${docId} state`, answer, 5_000)).payload
  }
  const worklistState = await captured(caseDocId(caseId))
  const reportState = await captured(reportDocId(caseId))
  // The FINAL report's SR joins the study, which the site then shares again as a new version: wait for it.
  const manifest = await waitFor('the study with its report SR, shared', async () => {
    const latest = await latestManifest(prober, studyUid)
    const count = (await studyHashes(node, studyUid)).length
    return latest !== undefined && latest.instanceCount === count && count > study.files.length ? latest : undefined
  }, 15_000, 250)

  // Two revocations of members that never were: a valid list, which every new member then gets on contact.
  const root = await openConsortium(consortium.dir)
  const revoked = [await revoke(root, fakePeerId(), 'fuzz'), await revoke(root, fakePeerId(), 'fuzz')]
  const revocations = encodeRevocationList(revoked)
  await prober.send(REVOCATIONS_PROTOCOL, [framed(revocations)], { waitMs: ANSWER_MS })

  const site: Site = {
    node, home, studyUid, caseId, manifest, prober, readers, worklistState, reportState, revocations, logOffset: 0,
    instances: await studyHashes(node, studyUid),
    wrapKey: certificate.wrapKey
  }
  const lost = await whatWasLost(site)
  if (lost !== '') throw new Error(`the set-up does not hold: ${lost}`)
  site.logOffset = (await fs.stat(join(home, 'node.log'))).size
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  say(`p2p: site ${node.peerId} holds study ${studyUid} (${site.instances.length} instances), case ${caseId} FINAL`)
  say(`p2p: set up in ${seconds} s`)
  return site
}

// The valid messages a member starts from, per protocol: each a list of messages sent on one stream.

type Protocol =
  | typeof MANIFEST_PROTOCOL
  | typeof CHUNKS_PROTOCOL
  | typeof ANNOUNCE_PROTOCOL
  | typeof SYNC_PROTOCOL
  | typeof REVOCATIONS_PROTOCOL
interface Valid { protocol: Protocol, name: string, messages: Uint8Array[] }

const sync = (name: string, docId: string, type: SyncMessage['type'], payload: Uint8Array): Valid =>
  ({ protocol: SYNC_PROTOCOL, name, messages: [encodeSyncMessage({ type, docId, payload })] })
const emptyState = (): Uint8Array => Y.encodeStateVector(new Y.Doc())

async function validMessages (site: Site, member: BadMember, random: Random): Promise<Valid> {
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
    async () => await announce('announcement of the site\'s study', studyUid),
    async () => ({ protocol: REVOCATIONS_PROTOCOL, name: 'revocations the site has', messages: [site.revocations] }),
    async () => ({ protocol: REVOCATIONS_PROTOCOL, name: 'no revocations', messages: [encodeRevocationList([])] }),
    async () => sync('step 1 of the members document', MEMBERS_DOC, SYNC_MESSAGE.step1, emptyState()),
    async () => sync('step 1 of the case', caseDocId(caseId), SYNC_MESSAGE.step1, emptyState()),
    async () => sync('step 1 of the report', report, SYNC_MESSAGE.step1, emptyState()),
    async () => sync('the site\'s case replayed', caseDocId(caseId), SYNC_MESSAGE.step2, site.worklistState),
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
        sync('a record deleted', caseDocId(caseId), update, changeOf(site.worklistState, doc => {
          doc.getMap('records').delete(first(doc))
        })),
        sync('a record overwritten', caseDocId(caseId), update, changeOf(site.worklistState, doc => {
          doc.getMap('records').set(first(doc), forged)
        }))
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
        v: 1, kind: 'report-signature', caseId, studyUid, status: 'ADDENDUM', sections: empty, text: 'Addendum.', by, at
      })
      const sections = { ...SECTIONS, impression: 'FORGED' }
      const final = await signReportRecord(key, {
        v: 1, kind: 'report-signature', caseId, studyUid, status: 'FINAL', sections, text: '', by, at
      })
      const forged: ReportSignatureRecord = { ...final, by: site.prober.peerId as PeerIdString }
      const edit = (change: (doc: Y.Doc) => void): Uint8Array => changeOf(site.reportState, doc => {
        doc.clientID = clientId
        doc.getMap('editors').set(String(clientId), binding)
        change(doc)
      })
      const presence = Uint8Array.from([1, ...encodeLength(clientId), 1, ...encodeLength(2), ...Buffer.from('{}')])
      return pick(random, [
        sync('an edit of the FINAL report', report, update, edit(doc => {
          doc.getText('findings').insert(0, 'TAMPERED ')
        })),
        sync('an addendum', report, update, edit(doc => {
          doc.getMap('signatures').set(recordKey(addendum), addendum)
        })),
        sync('a signature as another', report, update, edit(doc => {
          doc.getMap('signatures').set(recordKey(forged), forged)
        })),
        sync('presence', report, SYNC_MESSAGE.awareness, presence)
      ])
    }
  ]
  return await pick(random, makers)()
}

// Mutations: each takes the valid messages (bodies) and gives the bytes to send, framed or not.

/** `stall`: the stream is left hanging after `chunks`; `midway` when they end inside a message. */
interface Mutated { name: string, chunks: Uint8Array[], stall: boolean, midway?: boolean }

/** How long the site lets a message stop midway, per protocol (a stalled stream must be ended by then). */
const STALL_LIMIT_MS: Record<Protocol, number> = {
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
  2 ** 53, 1e308, -1, 2 ** 32, 0.5, -0, '', 'A'.repeat(10_000), null, true, [], {}, [1, 2, 3], '1.2.3', '0'.repeat(64)
]

function mutateJson (value: unknown, random: Random): unknown {
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

function flipBits (bytes: Uint8Array, random: Random): Uint8Array {
  const copy = Uint8Array.from(bytes)
  if (copy.byteLength === 0) return copy
  for (let n = 1 + below(random, 8); n > 0; n--) {
    const i = below(random, copy.byteLength)
    copy[i] = (copy[i] as number) ^ (1 << below(random, 8))
  }
  return copy
}

const MUTATIONS = [
  'flip', 'truncate', 'huge-length', 'short-length', 'duplicate', 'replay', 'reorder', 'oversize', 'stall',
  'field', 'field', 'varint', 'valid', 'split'
] as const

function mutate (valid: Valid, random: Random, replays: Uint8Array[]): Mutated {
  const bodies = [...valid.messages]
  const target = below(random, bodies.length)
  const body = bodies[target] as Uint8Array
  const all = (list: Uint8Array[]): Uint8Array[] => list.map(framed)
  const replace = (next: Uint8Array): Uint8Array[] => all(bodies.map((b, i) => i === target ? next : b))
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

// The run

async function peakRssMb (pid: number | undefined): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
}

/** Refusal codes logged for a peer since an offset of node.log, and the new offset. */
interface Logged { codes: string[], offset: number }

async function refusalsSince (home: string, offset: number, peer: string): Promise<Logged> {
  const handle = await fs.open(join(home, 'node.log'), 'r')
  try {
    const { size } = await handle.stat()
    if (size <= offset) return { codes: [], offset }
    const buffer = Buffer.alloc(size - offset)
    await handle.read(buffer, 0, buffer.byteLength, offset)
    const end = buffer.lastIndexOf(0x0a) + 1
    const codes: string[] = []
    for (const line of buffer.subarray(0, end).toString('utf8').split('\n')) {
      if (!line.includes(peer) || !line.includes('"code"')) continue
      try {
        const { code, peer: who } = JSON.parse(line) as { code?: unknown, peer?: unknown }
        const refusal = typeof code === 'string' && (code in REFUSAL_CODES || code === 'sync-read-overflow')
        if (who === peer && refusal) codes.push(code)
      } catch {}
    }
    return { codes, offset: offset + end }
  } finally {
    await handle.close()
  }
}

function summary (tally: P2pFuzzTally): string {
  const { refused, accepted, crashed, hung, lost, identities } = tally
  return `refused ${refused}, accepted ${accepted}, crashed ${crashed}, hung ${hung}, lost ${lost}; ` +
    `${identities} members admitted after bans; site peak RSS ${Math.round(tally.peakRssMb)} MB`
}

export async function runP2pFuzz (options: P2pFuzzOptions): Promise<P2pFuzzTally> {
  const { seed, say } = options
  const first = options.from ?? 0
  const tally: P2pFuzzTally = { ...emptyTally('p2p'), peakRssMb: 0, identities: 0, overMemory: [] }
  const consortium = await createScratchConsortium('P2P Fuzz')
  const site = await setUp(consortium, say)
  const work = await tempDir('radmesh-fuzz-members-')
  const spare = [...site.readers]
  let member: BadMember | undefined
  const replays: Uint8Array[] = []
  const finding = (index: number, outcome: FuzzFinding['outcome'], what: string): void => {
    tally[outcome]++
    tally.findings.push({ kind: 'p2p', seed, case: index, outcome, what })
    say(`p2p seed ${seed} case ${index}: ${outcome}: ${what}`)
  }
  const siteUp = (): boolean => site.node.process.exitCode === null && site.node.process.signalCode === null
  const restart = async (): Promise<void> => {
    const { dicomPort, p2pPort, wsPort, httpPort } = site.node
    await site.node.kill()
    const extraArgs = ['--stable-after', '1s']
    site.node = await startNode(site.home, { dicom: dicomPort, p2pPort, wsPort, httpPort, extraArgs })
    site.logOffset = (await fs.stat(join(site.home, 'node.log'))).size
    await site.prober.connect(p2pAddr(site.node)).catch(() => {})
  }
  /** A member connected to the site: the last one, or a reader of the case, or one admitted now. */
  const connectedMember = async (): Promise<BadMember> => {
    if (member?.connected() === true) return member
    // Banned (or the site restarted): its host goes, so its streams and keys do not pile up here.
    await member?.stop()
    member = undefined
    for (let attempt = 0; attempt < 5; attempt++) {
      let next = spare.shift()
      if (next === undefined) {
        const name = `Dr Fuzz ${++tally.identities}`
        next = await BadMember.admit(consortium.dir, work, { name, role: 'radiologist' })
      }
      try {
        await next.connect(p2pAddr(site.node), 5_000)
        if (next.connected()) {
          member = next
          return next
        }
      } catch {}
      await next.stop()
    }
    throw new Error('no member could connect to the site')
  }
  const health = async (): Promise<number> => {
    const started = performance.now()
    try {
      await fetch(`${site.node.http}/api/health`, { signal: AbortSignal.timeout(ANSWER_MS) })
    } catch {
      return Infinity
    }
    return performance.now() - started
  }
  const check = async (index: number): Promise<void> => {
    if (!site.prober.connected()) await site.prober.connect(p2pAddr(site.node)).catch(() => {})
    const latest = await latestManifest(site.prober, site.studyUid).catch(() => undefined)
    if (latest === undefined) finding(index, 'hung', 'a well-behaved member\'s manifest request was not answered')
    else site.manifest = latest
    const lost = await whatWasLost(site).catch((error: unknown) => `the checks failed: ${(error as Error).message}`)
    if (lost !== '') finding(index, 'lost', lost)
    const peak = await peakRssMb(site.node.process.pid)
    const crossed = peak > MAX_RSS_MB && tally.peakRssMb <= MAX_RSS_MB
    if (crossed) tally.overMemory.push(`by case ${index}: ${Math.round(peak)} MB`)
    tally.peakRssMb = Math.max(tally.peakRssMb, peak)
  }

  // One stream stalled midway is kept open at a time, and must be ended by the site within its time limit.
  let watch: { stream: Stream, limitMs: number, since: number, index: number, what: string } | undefined
  const watchStall = (final = false): void => {
    if (watch === undefined) return
    const age = performance.now() - watch.since
    if (watch.stream.status !== 'open') {
      watch = undefined
    } else if (age > watch.limitMs + 5_000) {
      const seconds = Math.round(age / 1000)
      finding(watch.index, 'hung', `${watch.what}: stalled, open ${seconds} s on (limit ${watch.limitMs / 1000} s)`)
      watch.stream.abort(new Error('done'))
      watch = undefined
    } else if (final) {
      watch.stream.abort(new Error('done'))
      watch = undefined
    }
  }

  const started = performance.now()
  try {
    for (let index = first; index < first + options.cases; index++) {
      watchStall()
      const random = generator(seed, index)
      let outcome: Exchanged | undefined
      let what = ''
      let current: BadMember | undefined
      let protocol: Protocol = MANIFEST_PROTOCOL
      try {
        current = await connectedMember()
        const valid = await validMessages(site, current, random)
        protocol = valid.protocol
        const mutated = mutate(valid, random, replays)
        what = `${valid.name} on ${valid.protocol}, ${mutated.name}`
        replays.push(...valid.messages.filter(message => message.byteLength < 64 * 1024))
        if (replays.length > 64) replays.splice(0, replays.length - 64)
        const keepOpen = mutated.midway === true && watch === undefined
        outcome = await current.send(valid.protocol, mutated.chunks, {
          keepOpen,
          close: !mutated.stall,
          waitMs: mutated.stall ? STALL_MS : ANSWER_MS,
          gapMs: mutated.name === 'split' ? 2 : 0,
          // An answer (a manifest's, an announcement's, the first chunk frame) is one whole message.
          enough: wholeMessage
        })
        if (keepOpen && outcome.stream !== undefined) {
          const limitMs = STALL_LIMIT_MS[valid.protocol]
          watch = { stream: outcome.stream, limitMs, since: performance.now(), index, what }
        }
        if (!mutated.stall && outcome.ended === 'open' && outcome.reply.byteLength === 0 && !outcome.sendFailed) {
          finding(index, 'hung', `${what}: the stream neither answered nor ended in ${ANSWER_MS / 1000} s`)
        }
      } catch (error) {
        what = `${what} (${(error as Error).message})`
        if (siteUp() && current === undefined) finding(index, 'hung', `no member connects: ${(error as Error).message}`)
      }
      tally.tried++
      if (!siteUp()) {
        const { exitCode, signalCode } = site.node.process
        finding(index, 'crashed', `${what}: exit ${exitCode ?? signalCode}\n${site.node.output().slice(-2_000)}`)
        await restart()
        continue
      }
      const ms = await health()
      if (ms > HEALTH_MS) finding(index, 'hung', `${what}: /api/health took ${Math.min(Math.round(ms), ANSWER_MS)}+ ms`)
      // Refusal lines are written as the stream is reset; the log is a stream of its own, give it a moment.
      await new Promise(resolve => setTimeout(resolve, protocol === SYNC_PROTOCOL ? 20 : 5))
      const logged: Logged = current === undefined
        ? { codes: [], offset: site.logOffset }
        : await refusalsSince(site.home, site.logOffset, current.peerId)
      site.logOffset = logged.offset
      const refused = outcome === undefined || outcome.ended === 'reset' || outcome.sendFailed ||
        logged.codes.length > 0 || errorAnswer(protocol, outcome.reply)
      if (refused) tally.refused++
      else tally.accepted++
      if (TRACE) say(`case ${index}: ${refused ? 'refused' : 'accepted'} ${what}: ${outcome?.ended} ${logged.codes}`)
      if ((index + 1) % CHECK_EVERY === 0 || index === first + options.cases - 1) await check(index)
      if ((index + 1 - first) % 500 === 0) {
        const seconds = Math.round((performance.now() - started) / 1000)
        say(`p2p: ${index + 1 - first} cases in ${seconds} s; ${summary(tally)}`)
      }
    }
  } finally {
    watchStall(true)
    const left = [site.prober, ...site.readers, ...(member === undefined ? [] : [member])]
    await Promise.all(left.map(async m => { await m.stop() }))
    await site.node.kill()
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  say(`p2p: ${tally.tried} cases (seed ${seed}) in ${seconds} s: ${summary(tally)}`)
  return tally
}
