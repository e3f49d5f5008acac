/**
 * The p2p fuzzer's site (./p2p.ts runs the cases): a real site process holding a small shared study, with a
 * case on its worklist claimed by the prober and its report signed FINAL, and readers who claimed after and so
 * edit the report; what it answers a member that knows nothing, captured; and the checks that nothing it held
 * was lost (the study's instances byte for byte, the case, the FINAL report and its signature).
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import * as Y from 'yjs'
import { reportHash } from '../../node/reports/document.ts'
import { signReportRecord } from '../../node/reports/records.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import { openConsortium, revoke } from '../../node/membership/consortium.ts'
import { recordKey, SECTION_NAMES, type Sections } from '../../protocol/collab/records.ts'
import {
  caseDocId,
  encodeSyncMessage,
  MEMBERS_DOC,
  reportDocId,
  SYNC_MESSAGE,
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import type { StudyManifest } from '../../protocol/exchange/manifest.ts'
import { decodeManifestResponse, encodeManifestRequest, MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { MemberCertificate } from '../../protocol/membership/certificate.ts'
import { encodeRevocationList, REVOCATIONS_PROTOCOL } from '../../protocol/membership/revocations.ts'
import { BadMember, type Exchanged, framed } from '../lib/bad-member.ts'
import type { ScratchConsortium } from '../lib/consortium.ts'
import { storescu } from '../lib/dcmtk.ts'
import { p2pAddr, type StartedNode, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { waitFor } from '../lib/wait.ts'
import { generateCt } from '../generate-ct.ts'

/** A case that gets no end of its stream in this time hung the node (the 5 s). */
export const ANSWER_MS = 5_000
/** Readers admitted before the case is published: they claim it, so they are editors of its report. */
const READERS = 3
export const SECTIONS: Sections = {
  indication: 'Headache.',
  technique: 'CT head without contrast.',
  comparison: 'None.',
  findings: 'No haemorrhage.',
  impression: 'Normal CT head.'
}

export interface Site {
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

interface CaseView {
  caseId: string
  studyInstanceUid: string
  site: string
  status: string
  claimedBy: string | null
}
interface ReportView {
  status: string
  sections: Sections
  signatures: Array<{ peerId: string; status: string; verified: boolean }>
}

// Length-prefixed messages, as the member sees them come back

/** The body of the first length-prefixed message in `bytes`, when it is whole. */
export function firstMessage(bytes: Uint8Array): Uint8Array | undefined {
  let length = 0
  let at = 0
  for (let scale = 1; at < bytes.byteLength; scale *= 128) {
    const byte = bytes[at++] as number
    length += (byte & 0x7f) * scale
    if ((byte & 0x80) === 0) return at + length <= bytes.byteLength ? bytes.subarray(at, at + length) : undefined
  }
  return undefined
}
export const wholeMessage = (bytes: Uint8Array): boolean => firstMessage(bytes) !== undefined

// What the site holds, and what must not change

/** The parts of a multipart/related body, by the boundary its content type names. */
function multipartParts(body: Buffer, contentType: string): Buffer[] {
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
async function studyHashes(node: StartedNode, studyUid: string): Promise<string[]> {
  const accept = 'multipart/related; type="application/dicom"'
  const signal = AbortSignal.timeout(ANSWER_MS)
  const response = await node.fetch(`/dicom-web/studies/${studyUid}`, { headers: { accept }, signal })
  if (response.status !== 200) throw new Error(`WADO-RS answered ${response.status}`)
  const parts = multipartParts(Buffer.from(await response.arrayBuffer()), response.headers.get('content-type') ?? '')
  return parts.map(part => createHash('sha256').update(part).digest('hex')).sort()
}

/** What was lost: an instance, the case, its FINAL report; the empty string when all is well. */
export async function whatWasLost(site: Site): Promise<string> {
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
export async function latestManifest(member: BadMember, studyUid: string): Promise<StudyManifest | undefined> {
  const request = framed(encodeManifestRequest({ studyUid }))
  const options = { waitMs: ANSWER_MS, maxReply: 1 << 24, enough: wholeMessage }
  const asked = await member.send(MANIFEST_PROTOCOL, [request], options)
  const body = firstMessage(asked.reply)
  const answer = body === undefined ? undefined : decodeManifestResponse(body)
  return answer?.status === 'ok' ? answer.manifest : undefined
}

// Set-up

/** A sync stream of `messages` from `member`; waits until the site closed or reset it. */
async function sendSync(member: BadMember, messages: SyncMessage[]): Promise<Exchanged> {
  const chunks = messages.map(message => framed(encodeSyncMessage(message)))
  return await member.send(SYNC_PROTOCOL, chunks, { waitMs: ANSWER_MS })
}

/** Sends a valid update; throws unless the site took it to the end of the stream. */
async function sendUpdate(member: BadMember, docId: string, payload: Uint8Array): Promise<void> {
  const sent = await sendSync(member, [{ type: SYNC_MESSAGE.update, docId, payload }])
  if (sent.ended !== 'closed') throw new Error(`the site ${sent.ended} a valid ${docId} update from ${member.peerId}`)
}

/** A worklist update adding `records` under their keys, from a client of its own. */
export function recordsUpdate(records: Array<Parameters<typeof recordKey>[0]>): Uint8Array {
  const doc = new Y.Doc()
  const map = doc.getMap('records')
  for (const record of records) map.set(recordKey(record), record)
  return Y.encodeStateAsUpdate(doc)
}

/** A copy of a document from the site's state, changed by `change`: the update that change makes. */
export function changeOf(state: Uint8Array, change: (doc: Y.Doc) => void): Uint8Array {
  const doc = new Y.Doc()
  for (const name of SECTION_NAMES) doc.getText(name)
  Y.applyUpdate(doc, state)
  const before = Y.encodeStateVector(doc)
  change(doc)
  return Y.encodeStateAsUpdate(doc, before)
}

/** A peer id string that no key stands behind (base58 of the right length). */
function fakePeerId(): PeerIdString {
  const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
  return `12D3KooW${Array.from(randomBytes(44), b => alphabet[b % alphabet.length]).join('')}` as PeerIdString
}

/** Starts the site, the prober and the readers; publishes a case and makes its report FINAL. */
export async function setUp(consortium: ScratchConsortium, say: (line: string) => void): Promise<Site> {
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
  await waitFor('the site to know the readers', async () => (await radiologists()) === READERS + 1, 10_000)

  const dir = await tempDir('radmesh-fuzz-study-')
  const study = await generateCt({ out: dir, slices: 3, rows: 64, columns: 64, seed: 77 })
  const stored = await storescu(node.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  if (stored.code !== 0) throw new Error(`storescu failed: ${stored.stderr}`)
  const cases = async (): Promise<CaseView[]> => (await node.api<CaseView[]>('GET', '/api/worklist')).body
  const [entry] = await waitFor(
    "the case on the site's worklist",
    async () => {
      const list = await cases()
      return list.length === 1 ? list : undefined
    },
    15_000
  )
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
  await waitFor("the prober's claim", async () => (await cases())[0]?.claimedBy === prober.peerId, 10_000)
  for (const reader of readers) await claim(reader, 2)

  // The prober writes the report and signs it FINAL, as its node would: a binding, the sections, the signature.
  const report = new Y.Doc()
  for (const name of SECTION_NAMES) report.getText(name)
  const at = new Date().toISOString()
  const by = prober.identity.peerId
  const key = prober.identity.privateKey
  const binding = await signReportRecord(key, { v: 1, kind: 'binding', caseId, clientId: report.clientID, by, at })
  const signature = await signReportRecord(key, {
    v: 1,
    kind: 'report-signature',
    caseId,
    studyUid,
    status: 'FINAL',
    sections: SECTIONS,
    text: '',
    by,
    at
  })
  report.transact(() => {
    report.getMap('editors').set(String(report.clientID), binding)
    for (const name of SECTION_NAMES) report.getText(name).insert(0, SECTIONS[name])
    report.getMap('signatures').set(recordKey(signature), signature)
  })
  await sendUpdate(prober, reportDocId(caseId), Y.encodeStateAsUpdate(report))
  const signed = await signWorklistRecord(key, {
    v: 1,
    kind: 'signed',
    caseId,
    status: 'FINAL',
    reportHash: reportHash(caseId, studyUid, SECTIONS),
    by,
    at
  })
  await sendUpdate(prober, caseDocId(caseId), recordsUpdate([signed]))
  await waitFor(
    'the case COMPLETED with its FINAL report',
    async () =>
      (await cases())[0]?.status === 'COMPLETED' &&
      (await node.api<ReportView>('GET', `/api/cases/${caseId}/report`)).body.status === 'FINAL',
    10_000
  )

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
  const manifest = await waitFor(
    'the study with its report SR, shared',
    async () => {
      const latest = await latestManifest(prober, studyUid)
      const count = (await studyHashes(node, studyUid)).length
      return latest !== undefined && latest.instanceCount === count && count > study.files.length ? latest : undefined
    },
    15_000,
    250
  )

  // Two revocations of members that never were: a valid list, which every new member then gets on contact.
  const root = await openConsortium(consortium.dir)
  const revoked = [await revoke(root, fakePeerId(), 'fuzz'), await revoke(root, fakePeerId(), 'fuzz')]
  const revocations = encodeRevocationList(revoked)
  await prober.send(REVOCATIONS_PROTOCOL, [framed(revocations)], { waitMs: ANSWER_MS })

  const site: Site = {
    node,
    home,
    studyUid,
    caseId,
    manifest,
    prober,
    readers,
    worklistState,
    reportState,
    revocations,
    logOffset: 0,
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
