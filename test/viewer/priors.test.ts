/**
 * The words the viewer shows for a case's priors and puts in the report: DICOM dates, study names, the
 * comparison sentence, where a prior stands, the PACS search line, and where an offered sentence goes.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { CasePriors, PriorStudy } from '../../protocol/api/index.ts'
import {
  comparisonSentence,
  formatDicomDate,
  priorStanding,
  priorsSettled,
  searchText,
  standingText,
  studyName
} from '../../viewer/src/priors/describe.ts'
import { sentenceInsertion } from '../../viewer/src/report/offers.ts'

const prior = (over: Partial<PriorStudy> = {}): PriorStudy => ({
  studyInstanceUid: '2.25.1',
  studyDate: '20240301',
  studyDescription: 'CT HEAD',
  modalities: ['CT'],
  bodyPart: 'HEAD',
  accessionNumber: 'A1',
  instances: 12,
  state: 'shared',
  local: true,
  error: null,
  ...over
})

const search = (over: Partial<CasePriors['search']> = {}): CasePriors['search'] => ({
  state: 'done',
  pacs: 'HOSPITAL_PACS@127.0.0.1:4242',
  attempts: 1,
  lastError: null,
  nextAttemptAt: null,
  ...over
})

test('a DICOM DA is written YYYY-MM-DD; the ACR-NEMA dotted form too; anything else is shown as it came', () => {
  assert.is(formatDicomDate('20240301'), '2024-03-01')
  assert.is(formatDicomDate(' 19991231 '), '1999-12-31')
  assert.is(formatDicomDate('2024.03.01'), '2024-03-01')
  assert.is(formatDicomDate(''), '')
  assert.is(formatDicomDate('2024'), '2024', 'a partial date is not padded into a wrong one')
  assert.is(formatDicomDate('20241301'), '20241301', 'month 13 is not a date')
  assert.is(formatDicomDate('20240300'), '20240300', 'day 0 is not a date')
  assert.is(formatDicomDate('20240101-20240301'), '20240101-20240301')
})

test('the comparison sentence names the modality once, and the date', () => {
  assert.is(comparisonSentence(prior()), 'Compared with CT HEAD of 2024-03-01.')
  assert.is(
    comparisonSentence(prior({ studyDescription: 'HEAD WO CONTRAST' })),
    'Compared with CT HEAD WO CONTRAST of 2024-03-01.',
    'a description without its modality is led by it'
  )
  assert.is(
    comparisonSentence(prior({ studyDescription: '  Brain   MR/CT fusion ', modalities: ['MR'] })),
    'Compared with Brain MR/CT fusion of 2024-03-01.',
    'spaces folded; a modality already in the description is not repeated'
  )
  assert.is(
    comparisonSentence(prior({ studyDescription: '', modalities: ['CT', 'SR'] })),
    'Compared with CT/SR HEAD of 2024-03-01.'
  )
  assert.is(
    comparisonSentence(prior({ studyDescription: '', modalities: [], bodyPart: '', studyDate: '' })),
    'Compared with the prior study (date not recorded).'
  )
  assert.is(studyName(prior({ studyDescription: 'CTA HEAD', modalities: ['CT'] })), 'CT CTA HEAD')
})

test('where a prior stands: found, retrieving, shared, local (ready to open), failed with its reason', () => {
  assert.is(priorStanding(prior({ state: 'found', local: false })), 'found')
  assert.is(priorStanding(prior({ state: 'retrieving', local: false })), 'retrieving')
  assert.is(priorStanding(prior({ state: 'shared', local: false })), 'shared')
  assert.is(priorStanding(prior({ state: 'shared', local: true })), 'local')
  assert.is(
    priorStanding(prior({ state: 'failed', local: true })),
    'failed',
    'a failure is shown even with a copy here'
  )
  assert.is(standingText(prior({ state: 'failed', error: 'C-MOVE refused: 0xA801' })), 'failed: C-MOVE refused: 0xA801')
  assert.is(standingText(prior({ state: 'failed', error: null })), 'failed: no reason given')
})

test('the search line: a PACS that is down says when it is tried again and why it failed', () => {
  assert.is(
    searchText(
      search({
        state: 'retrying',
        attempts: 3,
        lastError: 'connect ECONNREFUSED 127.0.0.1:4242',
        nextAttemptAt: '2026-12-07T08:15:30.000Z'
      }),
      0,
      'UTC'
    ),
    'PACS unreachable, retrying at 08:15:30 (3 attempts: connect ECONNREFUSED 127.0.0.1:4242)'
  )
  assert.is(searchText(search({ state: 'retrying', attempts: 1 }), 0), 'PACS unreachable, retrying soon (1 attempt)')
  assert.is(searchText(search(), 2), '2 priors from HOSPITAL_PACS@127.0.0.1:4242')
  assert.is(searchText(search({ pacs: null }), 1), "1 prior from the site's PACS", 'at a reader, whose node names none')
  assert.is(searchText(search({ state: 'pending', pacs: null }), 0), "Waiting for the site's search of its PACS…")
  assert.is(searchText(search({ state: 'pending' }), 0), 'Waiting to ask HOSPITAL_PACS@127.0.0.1:4242 for priors…')
  assert.is(searchText(search(), 0), 'No relevant priors in HOSPITAL_PACS@127.0.0.1:4242.')
  assert.match(searchText(search({ state: 'none', pacs: null }), 0), 'names no PACS')
  assert.is(
    searchText(search({ state: 'failed', lastError: 'C-FIND refused' }), 0),
    'The search of HOSPITAL_PACS@127.0.0.1:4242 failed: C-FIND refused'
  )
})

test('the list stops asking once the search has ended and every prior is here or failed', () => {
  const priors = (s: Partial<CasePriors['search']>, list: PriorStudy[]): CasePriors => ({
    caseId: 'c',
    studyInstanceUid: '2.25.9',
    search: search(s),
    priors: list
  })
  assert.is(priorsSettled(priors({ state: 'done' }, [prior(), prior({ state: 'failed', local: false })])), true)
  assert.is(priorsSettled(priors({ state: 'done' }, [prior({ state: 'shared', local: false })])), false)
  assert.is(priorsSettled(priors({ state: 'retrying' }, [])), false)
  assert.is(priorsSettled(priors({ state: 'none', pacs: null }, [])), true)
})

test('an offered sentence goes at the end of the section on its own line, unless a line already begins with it', () => {
  const s = 'Compared with CT HEAD of 2024-03-01.'
  assert.equal(sentenceInsertion('', s), { index: 0, insert: s })
  assert.equal(sentenceInsertion('None.', s), { index: 5, insert: `\n${s}` })
  assert.equal(sentenceInsertion('None.\n', s), { index: 6, insert: s })
  assert.is(sentenceInsertion(`None.\n${s}`, s), undefined, 'a second click adds nothing')
  assert.is(sentenceInsertion(`  ${s}  `, s), undefined)
  assert.is(sentenceInsertion(`${s} Stable.`, s), undefined, 'the reader took it and went on')
  assert.is(sentenceInsertion('Compared with CT HEAD of 2024-03-01: no change.', s), undefined)
  assert.equal(
    sentenceInsertion(`Also ${s}`, s),
    { index: s.length + 5, insert: `\n${s}` },
    'only a line that begins with it counts'
  )
  assert.is(sentenceInsertion('x', '  '), undefined)
})

test.run()
