/**
 * The worklist's records and the sync protocol's messages: well-formed ones round-trip; malformed,
 * oversized or unknown ones are refused with MalformedMessageError before anything else looks at them.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { signReportRecord, verifiedReportRecord } from '../../node/reports/records.ts'
import { signWorklistRecord, verifiedWorklistRecord } from '../../node/worklist/records.ts'
import type { ConsortiumTrust } from '../../node/membership/trust.ts'
import {
  decodeReportRecord,
  decodeWorklistRecord,
  MAX_SECTION_CHARS,
  recordKey
} from '../../protocol/collab/records.ts'
import {
  caseDocId,
  decodeDigest,
  decodeInventory,
  decodeSyncMessage,
  encodeDigest,
  encodeInventory,
  encodeSyncMessage,
  MAX_AWARENESS_BYTES,
  MAX_INVENTORY_ENTRIES,
  MAX_UPDATE_BYTES,
  MEMBERS_DOC,
  reportDocId,
  SYNC_MESSAGE
} from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { throwsMalformed } from '../helpers/assertions.ts'

const CASE = '0123456789abcdef01234567'
const trust = {} as ConsortiumTrust

test('sync messages round-trip; unknown types, documents and oversized payloads are refused', () => {
  const message = { type: SYNC_MESSAGE.update, docId: reportDocId(CASE), payload: Uint8Array.from([1, 2, 3]) }
  assert.equal(decodeSyncMessage(encodeSyncMessage(message)), message)
  assert.equal(
    decodeSyncMessage(encodeSyncMessage({ type: SYNC_MESSAGE.step1, docId: MEMBERS_DOC, payload: new Uint8Array(0) }))
      .docId,
    MEMBERS_DOC
  )
  assert.equal(
    decodeSyncMessage(
      encodeSyncMessage({ type: SYNC_MESSAGE.step1, docId: caseDocId(CASE), payload: new Uint8Array(0) })
    ).docId,
    caseDocId(CASE)
  )
  throwsMalformed(
    () => decodeSyncMessage(encodeSyncMessage({ ...message, docId: 'worklist' })),
    'the single worklist of radmesh 0.1 is not a 2.0 document'
  )
  const bytes = encodeSyncMessage(message)
  throwsMalformed(() => decodeSyncMessage(Uint8Array.from([9, ...bytes.subarray(1)])), 'case 1')
  throwsMalformed(() => decodeSyncMessage(encodeSyncMessage({ ...message, docId: 'report:../../etc' })), 'case 2')
  throwsMalformed(() => decodeSyncMessage(encodeSyncMessage({ ...message, docId: 'other' })), 'case 3')
  throwsMalformed(
    () => decodeSyncMessage(encodeSyncMessage({ ...message, payload: new Uint8Array(MAX_UPDATE_BYTES + 1) })),
    'case 4'
  )
  throwsMalformed(() => decodeSyncMessage(Uint8Array.from([0])), 'case 5')
  throwsMalformed(() => decodeSyncMessage(Uint8Array.from([0, 60, 1])), 'case 6')
  const presence = {
    type: SYNC_MESSAGE.awareness,
    docId: reportDocId(CASE),
    payload: new Uint8Array(MAX_AWARENESS_BYTES)
  }
  assert.equal(decodeSyncMessage(encodeSyncMessage(presence)), presence)
  throwsMalformed(
    () => decodeSyncMessage(encodeSyncMessage({ ...presence, payload: new Uint8Array(MAX_AWARENESS_BYTES + 1) })),
    'case 7'
  )
})

test('digests and inventories round-trip; cut, oversized, duplicated or unknown ones are refused', () => {
  const hash = new Uint8Array(32).fill(7)
  const digest = decodeSyncMessage(
    encodeSyncMessage({ type: SYNC_MESSAGE.digest, docId: 'ignored', payload: encodeDigest({ count: 300, hash }) })
  )
  assert.is(digest.docId, '', 'a digest names no document')
  assert.equal(decodeDigest(digest.payload), { count: 300, hash })
  throwsMalformed(() => decodeDigest(encodeDigest({ count: 1, hash }).subarray(0, 20)), 'digest cut')
  const entries = [
    { docId: MEMBERS_DOC, stateHash: new Uint8Array(16).fill(1) },
    { docId: caseDocId(CASE), stateHash: new Uint8Array(16).fill(2) }
  ]
  const page = { answer: true, last: false, entries }
  assert.equal(decodeInventory(encodeInventory(page)), page)
  const bytes = encodeInventory(page)
  throwsMalformed(() => decodeInventory(bytes.subarray(0, bytes.byteLength - 3)), 'inventory cut')
  throwsMalformed(() => decodeInventory(Uint8Array.from([...bytes, 0])), 'bytes after the last entry')
  throwsMalformed(
    () => decodeInventory(encodeInventory({ ...page, entries: [entries[0], entries[0]] as typeof entries })),
    'one document twice'
  )
  throwsMalformed(() => decodeInventory(Uint8Array.from([7, 0])), 'unknown flags')
  throwsMalformed(() => decodeInventory(Uint8Array.from([0, 0x81, 0x10])), 'more entries than a page holds')
  assert.throws(() =>
    encodeInventory({
      ...page,
      entries: Array.from({ length: MAX_INVENTORY_ENTRIES + 1 }, () => entries[0] as (typeof entries)[0])
    })
  )
  const unknown = Uint8Array.from([2, 1, 5, ...Buffer.from('other'), ...new Uint8Array(16)])
  throwsMalformed(() => decodeInventory(unknown), 'a document no radmesh writes')
})

test('a signed worklist record verifies under its own key; changed, moved or unsigned it does not', async () => {
  const key = await generateKeyPair('Ed25519')
  const by = peerIdFromPrivateKey(key).toString() as PeerIdString
  const claim = await signWorklistRecord(key, {
    v: 1,
    kind: 'claim',
    caseId: CASE,
    seq: 1,
    by,
    at: '2026-11-28T03:00:00.000Z'
  })
  assert.equal(await verifiedWorklistRecord(recordKey(claim), claim, trust), claim)
  for (const [storedUnder, value] of [
    [recordKey(claim), { ...claim, seq: 2 }],
    [`claim:${'A'.repeat(43)}`, claim],
    [recordKey(claim), { ...claim, by: peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString() }],
    [recordKey(claim), { ...claim, extra: 1 }]
  ] as const) {
    let refused = false
    try {
      await verifiedWorklistRecord(storedUnder, value, trust)
    } catch {
      refused = true
    }
    assert.ok(refused, JSON.stringify(value).slice(0, 120))
  }
})

test(
  'malformed records are refused: unknown kinds, bad ' + 'fields, oversized sections, an addendum without text',
  async () => {
    const key = await generateKeyPair('Ed25519')
    const by = peerIdFromPrivateKey(key).toString() as PeerIdString
    const base = { v: 1, by, at: '2026-11-28T03:00:00.000Z', signature: 'A'.repeat(86) }
    throwsMalformed(() => decodeWorklistRecord({ ...base, kind: 'steal', caseId: CASE }), 'case 7')
    throwsMalformed(() => decodeWorklistRecord({ ...base, kind: 'claim', caseId: 'nope', seq: 1 }), 'case 8')
    throwsMalformed(() => decodeWorklistRecord({ ...base, kind: 'claim', caseId: CASE, seq: 0 }), 'case 9')
    throwsMalformed(
      () => decodeWorklistRecord({ ...base, kind: 'claim', caseId: CASE, seq: 1, at: 'yesterday' }),
      'case 10'
    )
    throwsMalformed(
      () =>
        decodeWorklistRecord({
          ...base,
          kind: 'duty',
          shifts: [{ start: '2026-11-28T05:00:00Z', end: '2026-11-28T04:00:00Z' }]
        }),
      'case 11'
    )
    throwsMalformed(() => decodeWorklistRecord({ kind: 'member', certificate: {}, extra: true }), 'case 12')
    const sections = { indication: '', technique: '', comparison: '', findings: '', impression: '' }
    const signature = {
      ...base,
      kind: 'report-signature',
      caseId: CASE,
      studyUid: '1.2.3',
      status: 'FINAL',
      sections,
      text: ''
    }
    assert.is(decodeReportRecord(signature).kind, 'report-signature')
    throwsMalformed(
      () =>
        decodeReportRecord({ ...signature, sections: { ...sections, findings: 'x'.repeat(MAX_SECTION_CHARS + 1) } }),
      'case 13'
    )
    throwsMalformed(() => decodeReportRecord({ ...signature, sections: { ...sections, extra: '' } }), 'case 14')
    throwsMalformed(() => decodeReportRecord({ ...signature, status: 'ADDENDUM' }), 'case 15')
    throwsMalformed(() => decodeReportRecord({ ...base, kind: 'binding', caseId: CASE, clientId: -1 }), 'case 16')
    const binding = await signReportRecord(key, { v: 1, kind: 'binding', caseId: CASE, clientId: 42, by, at: base.at })
    assert.equal(await verifiedReportRecord('42', binding), binding)
    let refused = false
    try {
      await verifiedReportRecord('43', binding)
    } catch {
      refused = true
    }
    assert.ok(refused, 'a binding stored under another client id')
  }
)

test.run()
