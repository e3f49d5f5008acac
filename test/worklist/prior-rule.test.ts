/**
 * The prior rule: which of a patient's studies a case compares with (same modality and body part, within the
 * years, newest first, at most N), and routing.json's "pacs" and "priors" checked with errors that say what to
 * write.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { choosePriors, DEFAULT_PRIOR_RULE, type PriorCandidate, priorRuleOf } from '../../node/worklist/prior-rule.ts'
import { loadRouting } from '../../node/worklist/routing.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const current = { studyInstanceUid: '1.2.9', studyDate: '20261201', modalities: ['CT'], bodyPart: 'HEAD' }

const study = (uid: string, date: string, modality = 'CT', bodyPart = 'HEAD'): PriorCandidate => ({
  studyInstanceUid: uid,
  studyDate: date,
  studyDescription: `${modality} ${bodyPart}`,
  modalities: [modality],
  bodyParts: bodyPart === '' ? [] : [bodyPart],
  accessionNumber: '',
  instances: 10
})

const uids = (priors: PriorCandidate[]): string[] => priors.map(p => p.studyInstanceUid)

test('same modality and body part, newest first, at most three, within five years', () => {
  const candidates = [
    study('1.1', '20240301'),
    study('1.2', '20250615'),
    study('1.3', '20230101'),
    study('1.4', '20220101'),
    study('1.5', '20250101', 'MR'),
    study('1.6', '20250101', 'CT', 'CHEST'),
    study('1.7', '20201130'),
    study('1.2.9', '20261201')
  ]
  assert.equal(uids(choosePriors(current, candidates, DEFAULT_PRIOR_RULE)), ['1.2', '1.1', '1.3'])
  assert.equal(uids(choosePriors(current, candidates, { ...DEFAULT_PRIOR_RULE, max: 10 })), [
    '1.2',
    '1.1',
    '1.3',
    '1.4'
  ])
})

test('the body part is compared without case, and any series of the prior may name it', () => {
  const prior = { ...study('1.1', '20250101'), bodyParts: ['CHEST', 'head'] }
  assert.equal(uids(choosePriors(current, [prior], DEFAULT_PRIOR_RULE)), ['1.1'])
})

test('a study after the case’s, or without a date, is no prior', () => {
  assert.equal(choosePriors(current, [study('1.1', '20261202'), study('1.2', '')], DEFAULT_PRIOR_RULE), [])
})

test('the rule can leave out modality or body part, and a case without a body part compares modality only', () => {
  const candidates = [study('1.1', '20250101', 'MR'), study('1.2', '20250102', 'CT', 'CHEST')]
  assert.equal(uids(choosePriors(current, candidates, { ...DEFAULT_PRIOR_RULE, sameModality: false })), ['1.1'])
  assert.equal(uids(choosePriors(current, candidates, { ...DEFAULT_PRIOR_RULE, sameBodyPart: false })), ['1.2'])
  assert.equal(uids(choosePriors({ ...current, bodyPart: '' }, candidates, DEFAULT_PRIOR_RULE)), ['1.2'])
})

test('a case whose study has no date takes today for it', () => {
  const now = new Date(Date.UTC(2026, 11, 1))
  const candidates = [study('1.1', '20260101'), study('1.2', '20190101')]
  assert.equal(uids(choosePriors({ ...current, studyDate: '' }, candidates, DEFAULT_PRIOR_RULE, now)), ['1.1'])
})

test('"priors" in routing.json is checked', () => {
  assert.equal(priorRuleOf(undefined), DEFAULT_PRIOR_RULE)
  assert.equal(priorRuleOf({ max: 2 }), { ...DEFAULT_PRIOR_RULE, max: 2 })
  assert.match(String(priorRuleOf({ max: -1 })), /priors.max must be a whole number from 0/)
  assert.match(String(priorRuleOf({ max: 2.5 })), /priors.max/)
  assert.match(String(priorRuleOf({ withinYears: 0 })), /priors.withinYears must be a number of years above 0/)
  assert.match(String(priorRuleOf({ sameModality: 'yes' })), /priors.sameModality must be true or false/)
  assert.match(String(priorRuleOf({ years: 3 })), /"years", which it does not know/)
  assert.equal(priorRuleOf({ retrieve: 'move' }), { ...DEFAULT_PRIOR_RULE, retrieve: 'move' })
  assert.match(
    String(priorRuleOf({ retrieve: 'ftp' })),
    /priors.retrieve must be "get" \(C-GET, the default\) or "move"/
  )
  assert.match(String(priorRuleOf([])), /"priors" must be an object/)
})

test('routing.json names the PACS as AE@HOST:PORT, and a bad one is refused with what to write', async () => {
  const dir = await tempDir('prior-rule-')
  const file = join(dir, 'routing.json')
  await fs.writeFile(file, JSON.stringify({ pacs: 'PACS@10.20.0.5:104', priors: { max: 2, withinYears: 2 } }))
  const routing = await loadRouting(file)
  assert.equal(routing.pacs, { aeTitle: 'PACS', host: '10.20.0.5', port: 104 })
  assert.equal(routing.priors, { ...DEFAULT_PRIOR_RULE, max: 2, withinYears: 2 })
  await fs.writeFile(file, JSON.stringify({ pacs: 'PACS@10.20.0.5' }))
  const error = (await loadRouting(file).catch((e: unknown) => e)) as Error
  assert.match(error.message, /routing.json: "pacs" .*not HOST:PORT/)
  await fs.writeFile(file, JSON.stringify({ priors: { max: 50 } }))
  assert.match(((await loadRouting(file).catch((e: unknown) => e)) as Error).message, /priors.max/)
})

test.run()
