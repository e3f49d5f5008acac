/**
 * A member gone bad, run as its own process by the workflow tests:
 *
 *   node bad-editor.ts HOME TARGET_MULTIADDR CASE_ID VICTIM_PEER_ID
 *
 * A real radiologist member (HOME is joined) that connects to the target node and prints `{ "peerId" }`.
 * Once it reads a line "attack" on stdin (the test has made it a consultant on the case, and the report is
 * FINAL), it pulls the case's report with a sync step 1, then sends, one message each:
 *   final-edit      an update that binds its own Yjs client and rewrites the findings of the FINAL report
 *   forged-sign     a FINAL report signature naming VICTIM_PEER_ID as signer, signed with its own key
 *   forged-claim    a worklist claim record naming VICTIM_PEER_ID, signed with its own key
 *   garbage         random bytes as an update
 *   oversized       a message over the sync protocol's size limit (the stream is reset)
 * and prints `{ "sent": [...] }`. It runs until killed.
 */
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import * as Y from 'yjs'
import { signReportRecord } from '../../node/reports/records.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import { homePaths } from '../../node/identity/home.ts'
import { loadIdentity } from '../../node/identity/keys.ts'
import { readCertificateFile, readConsortiumFile } from '../../node/identity/member.ts'
import { MembershipRegistry } from '../../node/membership/registry.ts'
import { trustFrom } from '../../node/membership/trust.ts'
import { createHost } from '../../node/p2p/host.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { openDatabase } from '../../node/store/database.ts'
import { recordKey, type ReportSignatureRecord } from '../../protocol/collab/records.ts'
import {
  caseDocId,
  decodeSyncMessage,
  encodeSyncMessage,
  MAX_SYNC_MESSAGE_BYTES,
  reportDocId,
  SYNC_MESSAGE,
  SYNC_PROTOCOL
} from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'

const [home, targetAddr, caseId, victim] = process.argv.slice(2) as [string, string, string, PeerIdString]
const paths = homePaths(home)
const identity = await loadIdentity(paths)
const registry = new MembershipRegistry(
  trustFrom(await readConsortiumFile(paths.consortium)),
  await readCertificateFile(paths.certificate),
  await openDatabase(paths.database)
)
await registry.load()
const host = await createHost({
  identity,
  registry,
  penalties: new PeerPenalties(),
  listen: [],
  mdns: false,
  agentName: 'bad-editor',
  log: pino({ level: 'silent' })
})
await host.start()

const report = new Y.Doc()
let gotReport: () => void = () => {}
const reportArrived = new Promise<void>(resolve => {
  gotReport = resolve
})
await host.handle(SYNC_PROTOCOL, async (stream: Stream) => {
  const lp = lpStream(stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES })
  try {
    for (;;) {
      const message = decodeSyncMessage((await lp.read()).subarray())
      if (message.docId === reportDocId(caseId) && message.type !== SYNC_MESSAGE.step1) {
        Y.applyUpdate(report, message.payload)
        if (report.getMap('signatures').size > 0) gotReport()
      }
    }
  } catch {}
})

const target = multiaddr(targetAddr)
await host.dial(target, { signal: AbortSignal.timeout(10_000) })
process.stdout.write(`${JSON.stringify({ peerId: host.peerId.toString() })}\n`)
await new Promise<void>(resolve => {
  createInterface({ input: process.stdin }).on('line', line => {
    if (line.trim() === 'attack') resolve()
  })
})

const stream = await host.dialProtocol(target, SYNC_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
const lp = lpStream(stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES * 2 })
const send = async (type: number, docId: string, payload: Uint8Array): Promise<void> => {
  await lp.write(encodeSyncMessage({ type: type as 0, docId, payload }))
}
await send(SYNC_MESSAGE.step1, reportDocId(caseId), Y.encodeStateVector(new Y.Doc()))
await Promise.race([
  reportArrived,
  new Promise((_resolve, reject) =>
    setTimeout(() => {
      reject(new Error('the target never sent the FINAL report'))
    }, 15_000)
  )
])

const capture = (change: () => void): Uint8Array => {
  const before = Y.encodeStateVector(report)
  change()
  return Y.encodeStateAsUpdate(report, before)
}
const sent: string[] = []
const now = new Date().toISOString()

// final-edit: a valid binding of its own client, and new findings text
const binding = await signReportRecord(identity.privateKey, {
  v: 1,
  kind: 'binding',
  caseId,
  clientId: report.clientID,
  by: identity.peerId,
  at: now
})
await send(
  SYNC_MESSAGE.update,
  reportDocId(caseId),
  capture(() => {
    report.getMap('editors').set(String(report.clientID), binding)
    report.getText('findings').insert(0, 'TAMPERED ')
  })
)
sent.push('final-edit')

// forged-sign: a FINAL signature that names the victim, made with this member's key
const signature = [...report.getMap<ReportSignatureRecord>('signatures').values()][0] as ReportSignatureRecord
const forged = await signReportRecord(identity.privateKey, {
  ...signature,
  signature: undefined,
  sections: { ...signature.sections, impression: 'FORGED' },
  by: victim,
  at: now
} as unknown as Omit<ReportSignatureRecord, 'signature'>)
const forger = new Y.Doc()
Y.applyUpdate(forger, Y.encodeStateAsUpdate(report))
const forgerBefore = Y.encodeStateVector(forger)
forger.getMap('signatures').set(recordKey(forged), forged)
await send(SYNC_MESSAGE.update, reportDocId(caseId), Y.encodeStateAsUpdate(forger, forgerBefore))
sent.push('forged-sign')

// forged-claim: a claim in the case's document naming the victim
const claim = await signWorklistRecord(identity.privateKey, {
  v: 1,
  kind: 'claim',
  caseId,
  seq: 99,
  by: victim,
  at: now
})
const worklist = new Y.Doc()
worklist.getMap('records').set(`claim:${claim.signature.slice(0, 43)}`, { ...claim })
await send(SYNC_MESSAGE.update, caseDocId(caseId), Y.encodeStateAsUpdate(worklist))
sent.push('forged-claim')

await send(SYNC_MESSAGE.update, reportDocId(caseId), randomBytes(4096))
sent.push('garbage')

try {
  await lp.write(new Uint8Array(MAX_SYNC_MESSAGE_BYTES + 1024))
  sent.push('oversized')
} catch {
  sent.push('oversized (reset while sending)')
}
process.stdout.write(`${JSON.stringify({ sent })}\n`)
