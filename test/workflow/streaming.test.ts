/**
 * StatStreaming at a site, with the archive and worklist as stand-ins: which studies become a case at their
 * first instance, how their growth is shared, and when their case is marked complete.
 */
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { StudyStableEvent } from '../../node/archive/archive.ts'
import { StatStreaming } from '../../node/workflow/streaming.ts'
import type { CaseState } from '../../node/worklist/cases.ts'
import { DEFAULT_ROUTING } from '../../node/worklist/routing.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const SITE = 'site-peer'
const sleep = async (ms: number): Promise<void> => {
  await new Promise(resolve => setTimeout(resolve, ms))
}

function site(descriptions: Record<string, string>, options: { notRouted?: string[] } = {}) {
  const cases = new Map<string, CaseState>()
  const published: string[] = []
  const shared: string[] = []
  const acquired: Array<[string, number]> = []
  const rearmed: string[] = []
  const caseIdOf = (studyUid: string): string => `case-${studyUid}`
  const streaming = new StatStreaming(
    {
      archive: {
        study: async studyUid =>
          descriptions[studyUid] === undefined
            ? undefined
            : ({
                studyUid,
                attributes: { '00081030': descriptions[studyUid] },
                modalities: ['CT'],
                instanceCount: 1
              } as never),
        seriesOf: async function* () {
          yield { attributes: { '00180015': 'HEAD' } } as never
        },
        rearmStable: studyUid => {
          rearmed.push(studyUid)
        }
      },
      worklist: {
        ensureCase: async caseId => cases.get(caseId),
        markAcquired: async (caseId, instances) => {
          acquired.push([caseId, instances])
          const state = cases.get(caseId) as CaseState
          const { arriving: _, ...complete } = state
          cases.set(caseId, complete)
          return complete
        },
        liveCases: () => [...cases.values()]
      },
      routing: DEFAULT_ROUTING,
      log: pino({ level: 'silent' }),
      caseIdOf,
      notRouted: async studyUid => options.notRouted?.includes(studyUid) ?? false,
      publish: async studyUid => {
        published.push(studyUid)
        const state = { caseId: caseIdOf(studyUid), studyUid, site: SITE, arriving: true } as CaseState
        cases.set(state.caseId, state)
        return state
      },
      share: async studyUid => {
        shared.push(studyUid)
      }
    },
    { minIntervalMs: 50 }
  )
  return { streaming, cases, published, shared, acquired, rearmed }
}

const stable = (studyUid: string, instanceCount: number): StudyStableEvent => ({
  studyUid,
  instanceCount,
  seriesCount: 1,
  bytes: 1000
})

test('a STAT study is a case at its first instance, shared as it grows, and complete once stable', async () => {
  const { streaming, published, shared, acquired, cases } = site({ s1: 'CT HEAD STROKE' })
  streaming.grew('s1')
  for (let i = 0; i < 9; i++) streaming.grew('s1')
  await sleep(20)
  assert.equal(published, ['s1'], 'one case, at the first instance')
  assert.is(cases.get('case-s1')?.arriving, true)
  await waitFor('the instances after the first shared', () => shared.length > 0, 5_000, 10)
  await sleep(100)
  assert.is(shared.length, 1, 'the nine instances that came during the publish are shared together, once')
  assert.is(await streaming.stable(stable('s1', 10)), true)
  assert.equal(acquired, [['case-s1', 10]])
  assert.is(cases.get('case-s1')?.arriving, undefined)
  streaming.stop()
})

test('ROUTINE and URGENT studies, and studies not routed (priors, copies), wait for the stable path', async () => {
  const { streaming, published, shared } = site(
    { r: 'CT HEAD', u: 'CT HEAD URGENT', p: 'CT HEAD STROKE' },
    { notRouted: ['p'] }
  )
  for (const study of ['r', 'u', 'p']) streaming.grew(study)
  await sleep(100)
  assert.equal(published, [])
  assert.equal(shared, [])
  for (const study of ['r', 'u', 'p']) assert.is(await streaming.stable(stable(study, 1)), false)
  streaming.stop()
})

test('a case that was complete before keeps its stable path when its study grows again', async () => {
  const { streaming, published, cases } = site({ s2: 'CT HEAD STROKE' })
  cases.set('case-s2', { caseId: 'case-s2', studyUid: 's2', site: SITE } as CaseState)
  streaming.grew('s2')
  await sleep(50)
  assert.equal(published, [])
  assert.is(await streaming.stable(stable('s2', 3)), false)
  streaming.stop()
})

test('after a restart, a case still arriving waits for its study to be stable again, then is complete', async () => {
  const { streaming, cases, rearmed, acquired } = site({ s3: 'CT HEAD STROKE' })
  cases.set('case-s3', { caseId: 'case-s3', studyUid: 's3', site: SITE, arriving: true } as CaseState)
  cases.set('case-x', { caseId: 'case-x', studyUid: 'x', site: 'another-site', arriving: true } as CaseState)
  streaming.resume(SITE)
  assert.equal(rearmed, ['s3'], "only this site's cases")
  assert.is(await streaming.stable(stable('s3', 40)), true)
  assert.equal(acquired, [['case-s3', 40]])
  streaming.stop()
})

test.run()
