/**
 * Reading the archive for someone is audited there: a search with the keys it used (never their values), a
 * retrieval once what was asked for was found.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { StudyAccess } from '../../node/archive/access.ts'
import type { InstanceRecord } from '../../node/archive/archive.ts'
import { parseQidoQuery } from '../../node/archive/qido.ts'
import type { AuditActor, AuditEntry } from '../../node/audit/log.ts'
import { isRadmeshError, RadmeshError } from '../../node/errors.ts'

const ACTOR: AuditActor = { type: 'api', id: 'api-token' }
const instance = (sopUid: string): InstanceRecord => ({ sopUid, studyUid: '1.2', seriesUid: '1.2.3' }) as InstanceRecord

function access() {
  const entries: AuditEntry[] = []
  const service = new StudyAccess({
    archive: {
      instance: async sopUid => (sopUid === '1.2.3.4' ? instance(sopUid) : undefined),
      instancesOf: async function* () {
        yield instance('1.2.3.4')
        yield instance('1.2.3.5')
      }
    },
    audit: {
      append: async entry => {
        entries.push(entry)
        return {} as never
      }
    }
  })
  return { service, entries }
}

async function* records() {
  yield { '00100010': 'DOE^JOHN', '0020000D': '1.2' }
  yield { '00100010': 'ROE^JANE', '0020000D': '1.3' }
}

test('a search answers its matches and audits the keys it used, never their values', async () => {
  const { service, entries } = access()
  const query = parseQidoQuery({ PatientName: 'DOE^JOHN' }, 'study')
  const found = await service.search('study', query, records(), { actor: ACTOR, via: 'QIDO' })
  assert.equal(
    found.map(r => r['0020000D']),
    ['1.2']
  )
  assert.is(entries.length, 1)
  assert.is(entries[0]?.detail, 'QIDO study by 00100010: 1 result(s)')
  assert.not.match(JSON.stringify(entries), 'DOE')
})

test('a retrieval is audited with the instances it read', async () => {
  const { service, entries } = access()
  const retrieval = { event: 'instancesTransferred', detail: 'retrieve' } as const
  const read = await service.retrieve({ study: '1.2' }, ACTOR, retrieval, list => list.length)
  assert.is(read, 2)
  assert.equal(
    entries.map(e => [e.event, e.instances]),
    [['instancesTransferred', ['1.2.3.4', '1.2.3.5']]]
  )
})

test('what a path does not name, or a read that fails, is not audited', async () => {
  const { service, entries } = access()
  const accessed = { event: 'instancesAccessed', detail: 'x' } as const
  const missing = service.retrieve({ study: '9.9', instance: '1.2.3.4' }, ACTOR, accessed, () => 1)
  await missing.then(
    () => assert.unreachable(),
    error => {
      assert.ok(isRadmeshError(error))
      assert.is(error.code, 'RADMESH_NOT_FOUND')
    }
  )
  const failing = service.retrieve({ study: '1.2' }, ACTOR, accessed, () => {
    throw new RadmeshError('RADMESH_NOT_FOUND', 'no frame 9')
  })
  await failing.then(
    () => assert.unreachable(),
    () => {}
  )
  assert.equal(entries, [])
})

test.run()
