/**
 * The `priors` record of a case document: a signed one round-trips and verifies under its own key; a prior with
 * a field too many, a bad date, UID, modality or state, or a list past its bound is refused as malformed; in a
 * case, only the site's latest record counts, and the update check takes none from another site.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { UpdateRefusedError } from '../../node/crdt/inspect.ts'
import type { ConsortiumTrust } from '../../node/membership/trust.ts'
import { deriveCases } from '../../node/worklist/cases.ts'
import { checkPriorsAuthor } from '../../node/worklist/check.ts'
import { signWorklistRecord, verifiedWorklistRecord } from '../../node/worklist/records.ts'
import { MAX_CASE_PRIORS, type PriorEntry } from '../../protocol/collab/prior-records.ts'
import { decodeWorklistRecord, recordKey } from '../../protocol/collab/records.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { throwsMalformed } from '../helpers/assertions.ts'

const CASE = '0123456789abcdef01234567'
const prior: PriorEntry = {
  studyUid: '1.2.826.0.1.3680043.8.498.91',
  studyDate: '20250301',
  studyDescription: 'CT HEAD',
  modalities: ['CT'],
  bodyPart: 'HEAD',
  accessionNumber: 'A123',
  instances: 120,
  state: 'shared',
  error: ''
}

async function signer(): Promise<{ key: Awaited<ReturnType<typeof generateKeyPair>>; by: PeerIdString }> {
  const key = await generateKeyPair('Ed25519')
  return { key, by: peerIdFromPrivateKey(key).toString() as PeerIdString }
}

test('a signed priors record round-trips and verifies under its own key', async () => {
  const { key, by } = await signer()
  const record = await signWorklistRecord(key, {
    v: 1,
    kind: 'priors',
    caseId: CASE,
    priors: [prior, { ...prior, studyUid: '1.2.3', state: 'failed', error: 'PACS sent none' }],
    by,
    at: '2026-12-01T03:00:00.000Z'
  })
  assert.equal(decodeWorklistRecord(JSON.parse(JSON.stringify(record))), record)
  assert.equal(await verifiedWorklistRecord(recordKey(record), record, {} as ConsortiumTrust), record)
})

test('a malformed prior or list is refused', () => {
  const base = { v: 1, kind: 'priors', caseId: CASE, at: '2026-12-01T03:00:00.000Z', signature: 'A'.repeat(86) }
  const record = (priors: unknown) => ({
    ...base,
    by: '12D3KooWHxPmvsbZpB6JN5ZhjLKCEdu4DUnp9HWfMNmtgqrJCi9g',
    priors
  })
  assert.ok(decodeWorklistRecord(record([prior])))
  for (const [what, priors] of [
    ['a field too many', [{ ...prior, patientName: 'DOE^JANE' }]],
    ['a field missing', [{ ...prior, error: undefined }]],
    ['a date that is not YYYYMMDD', [{ ...prior, studyDate: '2025-03-01' }]],
    ['a UID that is not one', [{ ...prior, studyUid: '../etc' }]],
    ['a modality that is not a code', [{ ...prior, modalities: ['ct scan'] }]],
    ['a state of the site search', [{ ...prior, state: 'retrieving' }]],
    ['negative instances', [{ ...prior, instances: -1 }]],
    ['too many priors', Array.from({ length: MAX_CASE_PRIORS + 1 }, () => prior)],
    ['not a list', prior]
  ] as const) {
    throwsMalformed(() => decodeWorklistRecord(record(priors)), what)
  }
})

test("a case's priors are its site's latest record; one by anyone else is not taken", async () => {
  const site = await signer()
  const other = await signer()
  const at = (minute: number) => `2026-12-01T03:0${minute}:00.000Z`
  const caseRecord = await signWorklistRecord(site.key, {
    v: 1,
    kind: 'case',
    caseId: CASE,
    studyUid: '1.2.826.0.1.3680043.8.498.90',
    site: site.by,
    siteName: 'Priors General',
    priority: 'STAT',
    subspecialty: 'neuro',
    modalities: ['CT'],
    bodyPart: 'HEAD',
    readers: [],
    createdAt: at(0),
    dueAt: at(9),
    by: site.by,
    at: at(0)
  })
  const first = await signWorklistRecord(site.key, {
    v: 1,
    kind: 'priors',
    caseId: CASE,
    priors: [],
    by: site.by,
    at: at(1)
  })
  const latest = await signWorklistRecord(site.key, {
    v: 1,
    kind: 'priors',
    caseId: CASE,
    priors: [prior],
    by: site.by,
    at: at(2)
  })
  const forged = await signWorklistRecord(other.key, {
    v: 1,
    kind: 'priors',
    caseId: CASE,
    priors: [{ ...prior, studyUid: '1.2.666' }],
    by: other.by,
    at: at(3)
  })
  assert.equal(deriveCases([caseRecord, latest, forged, first]).get(CASE)?.priors, [prior])
  assert.is(deriveCases([caseRecord]).get(CASE)?.priors, undefined)
})

test("a priors record is taken from the case's site only: another site's is refused by the update check", async () => {
  const [site, other] = [await signer(), await signer()]
  const listedBy = async (who: Awaited<ReturnType<typeof signer>>) =>
    await signWorklistRecord(who.key, {
      v: 1,
      kind: 'priors',
      caseId: CASE,
      priors: [prior],
      by: who.by,
      at: '2026-12-01T03:00:00.000Z'
    })
  const state = { caseId: CASE, site: site.by }
  checkPriorsAuthor(state, [await listedBy(site)])
  const foreign = await listedBy(other)
  assert.throws(
    () => checkPriorsAuthor(state, [foreign]),
    (error: unknown) => error instanceof UpdateRefusedError && /listed by its site only/.test(String(error))
  )
})

test.run()
