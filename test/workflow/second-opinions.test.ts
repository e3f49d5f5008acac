/**
 * Second opinions coming back (node/workflow/second-opinions.ts), with the site's stores in memory: the FINAL
 * report on a copy is joined to the original case through the mapping, audited once even across a restart, and
 * only the site answers.
 */
import pino from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { ReportSignatureRecord } from '../../protocol/collab/records.ts'
import type { DeidMapping } from '../../node/deid/mappings.ts'
import { SecondOpinions, type SecondOpinionsOptions } from '../../node/workflow/second-opinions.ts'
import { caseIdFor } from '../../node/workflow/workflow.ts'
import type { CaseState } from '../../node/worklist/cases.ts'

const SITE = '12D3KooWSite'
const READER = '12D3KooWOutside'
const ORIGINAL = '1.2.826.0.1.3680043.99.1'
const COPY = '2.25.1234'
const COPY_CASE = caseIdFor(SITE, COPY)
const ORIGINAL_CASE = caseIdFor(SITE, ORIGINAL)

const state = (caseId: string, studyUid: string, extra: Partial<CaseState> = {}): CaseState =>
  ({
    caseId,
    studyUid,
    site: SITE,
    siteName: 'Site',
    readers: [READER],
    consultants: [],
    claimers: [READER],
    claimedBy: READER,
    status: 'COMPLETED',
    finalAt: '2026-12-07T08:00:00.000Z',
    ...extra
  }) as CaseState

const FINAL = {
  kind: 'report-signature',
  by: READER,
  at: '2026-12-07T08:00:00.000Z',
  signature: 'x'.repeat(86),
  status: 'FINAL',
  sections: { indication: '', technique: '', comparison: '', findings: 'No bleed.', impression: 'Agree.' },
  text: ''
} as unknown as ReportSignatureRecord

function site(store: Map<string, DeidMapping>, audited: string[], peerId = SITE): SecondOpinions {
  const cases = new Map([
    [COPY_CASE, state(COPY_CASE, COPY, { purpose: 'second-opinion' })],
    [ORIGINAL_CASE, state(ORIGINAL_CASE, ORIGINAL, { status: 'SCHEDULED', finalAt: null })]
  ])
  const options: SecondOpinionsOptions = {
    peerId,
    mappings: {
      get: async uid => store.get(uid),
      copiesOf: async uid => [...store.values()].filter(m => m.originalStudyUid === uid),
      keep: async mapping => {
        store.set(mapping.copyStudyUid, mapping)
      }
    },
    reports: { finalSignature: async caseId => (caseId === COPY_CASE ? { final: FINAL, addenda: [] } : undefined) },
    worklist: {
      caseState: caseId => cases.get(caseId),
      ensureCase: async caseId => cases.get(caseId),
      requireCase: caseId => cases.get(caseId) as CaseState,
      nameOf: peer => (peer === READER ? 'Dr Outside' : peer),
      onChange: () => () => {},
      allCases: () => [...cases.values()]
    },
    documents: { onUpdate: () => () => {} },
    audit: {
      append: async entry => {
        audited.push(entry.detail ?? '')
        return undefined as never
      }
    },
    log: pino({ level: 'silent' })
  }
  return new SecondOpinions(options)
}

test('the FINAL report on a copy comes back to the original case, audited once across a restart', async () => {
  const store = new Map<string, DeidMapping>([
    [
      COPY,
      {
        copyStudyUid: COPY,
        originalStudyUid: ORIGINAL,
        uidMap: [],
        dateOffsetDays: 0,
        madeAt: '2026-12-07T07:00:00.000Z',
        sharedWith: [READER]
      }
    ]
  ])
  const audited: string[] = []
  const first = site(store, audited)
  first.start()
  await first.settled()
  assert.equal(audited, [
    `case ${ORIGINAL_CASE}: second opinion FINAL by Dr Outside on de-identified copy ${COPY} (case ${COPY_CASE})`
  ])
  assert.is(first.originalCaseOf(COPY_CASE), ORIGINAL_CASE)
  const [opinion] = await first.ofCase(ORIGINAL_CASE)
  assert.equal(
    [opinion?.copyCaseId, opinion?.status, opinion?.report?.sections.impression, opinion?.report?.signedByName],
    [COPY_CASE, 'COMPLETED', 'Agree.', 'Dr Outside']
  )
  first.stop()

  const restarted = site(store, audited)
  restarted.start()
  await restarted.settled()
  assert.is(audited.length, 1, 'a restart audits nothing again')
  restarted.stop()
})

test('a node that is not the case site answers no second opinions and joins nothing', async () => {
  const audited: string[] = []
  const elsewhere = site(new Map(), audited, '12D3KooWOther')
  elsewhere.start()
  await elsewhere.settled()
  assert.equal(await elsewhere.ofCase(ORIGINAL_CASE), [])
  assert.equal(audited, [])
  elsewhere.stop()
})

test.run()
