/**
 * Query parameters are validated on every route that takes them: integers in their range, enums, lengths.
 * A bad one is 400 RADMESH_BAD_REQUEST naming the parameter; a good one still works.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'

let node: StartedNode

test.before(async () => {
  const consortium = await createScratchConsortium('Queries')
  node = await startNode(await consortium.member('Queries Site', 'site'))
})

test.after(async () => {
  await node?.kill()
})

async function refused(path: string, parameter: string): Promise<void> {
  const response = await node.fetch(path, { headers: { accept: 'application/json' } })
  const body = (await response.json()) as { error?: { code?: string; message?: string } }
  assert.is(response.status, 400, `${path}: ${JSON.stringify(body)}`)
  assert.is(body.error?.code, 'RADMESH_BAD_REQUEST', path)
  assert.match(body.error?.message ?? '', parameter, `${path}: the message names ${parameter}`)
}

async function answered(path: string): Promise<unknown> {
  const response = await node.fetch(path, { headers: { accept: 'application/json' } })
  assert.is(response.status, 200, `${path}: ${response.status}`)
  return await response.json()
}

test('GET /api/audit takes a limit from 1 to 100000 and verify as 1, true, 0 or false', async () => {
  for (const limit of ['-5', '0', 'abc', '1.5', '100001', '99999999999999999999']) {
    await refused(`/api/audit?limit=${limit}`, 'limit')
  }
  await refused('/api/audit?limit=1&limit=2', 'limit')
  await refused('/api/audit?verify=maybe', 'verify')
  const some = (await answered('/api/audit?limit=1')) as { total: number; records: unknown[] }
  assert.ok(some.records.length <= 1)
  const verified = (await answered('/api/audit?limit=100000&verify=1')) as { verify?: { ok: boolean } }
  assert.is(verified.verify?.ok, true)
  assert.is(((await answered('/api/audit?verify=false')) as { verify?: unknown }).verify, undefined)
})

test('GET /api/worklist takes status, priority and mine only from their lists', async () => {
  await refused('/api/worklist?status=DONE', 'status')
  await refused('/api/worklist?priority=LOW', 'priority')
  await refused('/api/worklist?mine=yes', 'mine')
  await refused('/api/worklist?status=SCHEDULED&status=COMPLETED', 'status')
  assert.equal(await answered('/api/worklist?status=IN%20PROGRESS&priority=STAT&mine=true'), [])
})

test('QIDO-RS refuses a bad limit, offset, fuzzymatching, unknown key, over-long value, at each level', async () => {
  const series = '/dicom-web/studies/1.2.3/series'
  const levels = ['/dicom-web/studies', series, `${series}/1.2.3.4/instances`]
  for (const base of levels) {
    await refused(`${base}?limit=-5`, 'limit')
    await refused(`${base}?limit=0`, 'limit')
    await refused(`${base}?offset=-1`, 'offset')
    await refused(`${base}?offset=1e3`, 'offset')
    await refused(`${base}?limit=1&limit=2`, 'limit')
    await refused(`${base}?fuzzymatching=maybe`, 'fuzzymatching')
    await refused(`${base}?includefield=NoSuchKeyword`, 'NoSuchKeyword')
    await refused(`${base}?NoSuchKeyword=1`, 'NoSuchKeyword')
    await refused(`${base}?StudyDescription=${'*'.repeat(1025)}`, 'StudyDescription')
    const longest = `StudyDescription=${'*'.repeat(1024)}`
    assert.equal(await answered(`${base}?limit=10&offset=0&fuzzymatching=true&${longest}`), [])
  }
})

test('QIDO-RS takes only UIDs as the study and series in its path', async () => {
  await refused('/dicom-web/studies/DOE%5EJOHN/series', 'study')
  await refused(`/dicom-web/studies/${'1.'.repeat(40)}1/series`, 'study')
  await refused('/dicom-web/studies/1.2.3/series/x/instances', 'series')
  assert.equal(await answered('/dicom-web/studies/1.2.3/series/1.2.3.4/instances'), [])
})

test.run()
