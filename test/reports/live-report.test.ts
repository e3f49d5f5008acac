/**
 * The viewer's live report: a change the report refuses is answered by the refusal's code (never its text),
 * and opening the report and each accepted change are in the audit trail.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import type { AuditActor } from '../../node/audit/log.ts'
import type { CaseState } from '../../node/worklist/cases.ts'
import { UpdateRefusedError } from '../../node/crdt/inspect.ts'
import { LiveReports } from '../../node/reports/live-report.ts'
import { type CaseError, isRadmeshError } from '../../node/errors.ts'

const CASE = '0123456789abcdef01234567'
const ACTOR: AuditActor = { type: 'viewer', id: 'session-1' }
const STATE = { caseId: CASE, studyUid: '1.2.3' } as CaseState

function live(refusal?: UpdateRefusedError) {
  const audited: string[] = []
  const doc = new Y.Doc()
  doc.getText('findings').insert(0, 'normal')
  const service = new LiveReports({
    reports: {
      readable: () => STATE,
      open: async () => doc,
      view: async () => {
        throw new Error('not used')
      },
      audited: async (state, action, actor, detail) => {
        audited.push(`${state.caseId} ${action} ${actor.id} ${detail}`)
      },
      viewerBinding: async () => {
        throw new Error('not used')
      }
    },
    worklist: { requireCase: () => STATE },
    documents: { onUpdate: () => () => {} },
    presence: { apply: async () => {}, snapshot: () => undefined, onUpdate: () => () => {} },
    sync: {
      applyFromViewer: async () => {
        if (refusal !== undefined) throw refusal
      }
    }
  })
  return { service, audited, doc }
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
  } catch (error) {
    if (isRadmeshError(error)) return (error as CaseError).code
    throw error
  }
  return undefined
}

test("a change to a FINAL report is refused as RADMESH_REPORT_FINAL, by the refusal's code", async () => {
  const { service, audited } = live(new UpdateRefusedError('whatever the text says', 2, 'RADMESH_REPORT_FINAL'))
  assert.is(await codeOf(service.apply(CASE, new Uint8Array([1]), ACTOR)), 'RADMESH_REPORT_FINAL')
  assert.equal(audited, [])
})

test('any other refusal is RADMESH_NOT_ALLOWED, even when its text says FINAL', async () => {
  const { service } = live(new UpdateRefusedError('a FINAL-looking message', 5))
  assert.is(await codeOf(service.apply(CASE, new Uint8Array([1]), ACTOR)), 'RADMESH_NOT_ALLOWED')
})

test('an accepted change and opening the report are audited for the caller', async () => {
  const { service, audited, doc } = live()
  await service.apply(CASE, new Uint8Array([1]), ACTOR)
  const subscription = await service.subscribe(CASE, ACTOR, { update: () => {}, awareness: () => {} })
  const copy = new Y.Doc()
  Y.applyUpdate(copy, subscription.state)
  assert.is(copy.getText('findings').toString(), doc.getText('findings').toString())
  assert.equal(audited, [`${CASE} U session-1 edited in the viewer`, `${CASE} R session-1 opened live`])
})

test.run()
