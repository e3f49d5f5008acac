/**
 * No patient data in the logs: the HTTP logger names each request by its path and parameter names, never a
 * query value. A real node is asked QIDO queries carrying a canary name and id, answered or refused every way
 * an HTTP request can be, and afterwards no file under its HOME holds the canary, in UTF-8 or UTF-16.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loggableUrl } from '../../node/http/log.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { logOf, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { rawRequest } from '../helpers/raw-http.ts'

const NAME = 'Ünïcødé^Çanary'
const ID = 'CANARY123456'

test('a logged URL keeps its path and parameter names; values, free-text segments and sign-in codes go', () => {
  const query = '/dicom-web/studies?PatientName=DOE%5EJOHN&PatientID=123&limit=10'
  assert.is(loggableUrl(query), '/dicom-web/studies?PatientName=…&PatientID=…&limit=…')
  const frames = '/dicom-web/studies/1.2.840.1/series/1.2.840.2/instances/1.2.840.3/frames/1,2'
  assert.is(loggableUrl(frames), frames)
  assert.is(loggableUrl('/api/worklist?mine'), '/api/worklist?mine')
  assert.is(loggableUrl('/dicom-web/studies?DOE%5EJOHN&=x&&a=b=c'), '/dicom-web/studies?…&…&a=…')
  assert.is(loggableUrl('/dicom-web/studies/%C3%9Cn%C3%AFc/series'), '/dicom-web/studies/…/series')
  assert.is(loggableUrl('/dicom-web/studies/DOE^JOHN'), '/dicom-web/studies/…')
  assert.is(loggableUrl('/signin/3q2-7wE_abcdefghijklmnopqrstuvwxyz0123456789AB'), '/signin/…')
  assert.is(loggableUrl(`/dicom-web/studies?${'a=1&'.repeat(100)}`).split('&').length, 65)
})

let node: StartedNode

test.before(async () => {
  const consortium = await createScratchConsortium('Logs')
  // The most verbose level: nothing may log a request's values, even when asked to say everything.
  node = await startNode(await consortium.member('Logs Site', 'site'), { env: { RADMESH_LOG_LEVEL: 'trace' } })
})

test.after(async () => {
  await node?.kill()
})

const q = encodeURIComponent

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true })
  const nested = await Promise.all(
    entries.map(async entry => {
      const path = join(dir, entry.name)
      return entry.isDirectory() ? await filesUnder(path) : entry.isFile() ? [path] : []
    })
  )
  return nested.flat()
}

test('QIDO queries with a name and id, answered and refused, leave neither anywhere under HOME', async () => {
  const get = async (path: string, accept = 'application/dicom+json'): Promise<number> => {
    const response = await node.fetch(path, { headers: { accept } })
    await response.arrayBuffer()
    return response.status
  }
  const statuses = [
    await get(`/dicom-web/studies?PatientName=${q(NAME)}&PatientID=${q(ID)}`),
    await get(`/dicom-web/studies?PatientID=${ID}`),
    await get(`/dicom-web/studies?PatientName=*${q('Çanary')}*&fuzzymatching=true&includefield=all`),
    await get(`/dicom-web/studies/1.2.3/series?PatientID=${ID}`),
    await get(`/dicom-web/studies?PatientBirthDate=${ID}`), // not a date: 400
    await get(`/dicom-web/studies?${q(NAME)}=${ID}`), // not an attribute: 400
    await get(`/dicom-web/studies?PatientID=${ID}`, 'text/html'), // 406
    await get(`/dicom-web/no-such-route?PatientID=${ID}&PatientName=${q(NAME)}`), // 404
    await get(`/dicom-web/studies/${q(NAME)}/series?PatientID=${ID}`), // not a UID: 400
    await get(`/dicom-web/studies/%E0${ID}?PatientName=${q(NAME)}`) // a path that does not decode: 400
  ]
  statuses.push((await fetch(`${node.http}/dicom-web/studies?PatientID=${ID}&PatientName=${q(NAME)}`)).status) // 401
  const brokenRequest = `GET /dicom-web/studies?PatientID=${ID} HTTP/1.1\r\nHost: x\r\nBroken ${ID}\r\n\r\n`
  const broken = await rawRequest(node.httpPort, brokenRequest)
  statuses.push(broken.status)

  // The requests were logged, by path and parameter names.
  const lines = await logOf(node.home)
  const urls = lines.map(line => (line['req'] as { url?: string } | undefined)?.url).filter(url => url !== undefined)
  assert.ok(urls.includes('/dicom-web/studies?PatientName=…&PatientID=…'), urls.join('\n'))

  await node.stop() // flushes the log
  // The name as sent (percent-encoded) and as decoded, whole and in parts, and the id.
  const canaries = [NAME, 'Ünïcødé', 'Çanary', ID, ID.toLowerCase(), q(NAME), q('Ünïcødé'), q('Çanary')]
  const encodings = ['utf8', 'utf16le'] as const
  const needles = canaries.flatMap(text => encodings.map(encoding => ({ text, bytes: Buffer.from(text, encoding) })))
  const files = await filesUnder(node.home)
  for (const name of ['node.log', 'audit.log'])
    assert.ok(
      files.some(file => file.endsWith(name)),
      name
    )
  for (const file of files) {
    const bytes = await fs.readFile(file)
    for (const needle of needles) assert.is(bytes.indexOf(needle.bytes), -1, `${file} holds "${needle.text}"`)
  }
  // Each way a request ends was taken: answered, refused by radmesh, by fastify, by Node's parser.
  assert.equal(statuses, [200, 200, 200, 200, 400, 400, 406, 404, 400, 400, 401, 400])
})

test.run()
