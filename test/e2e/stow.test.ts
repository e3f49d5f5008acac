/**
 * STOW-RS against a real node process: instances posted in one request come back byte-identical through WADO-RS,
 * the boundary real clients send is taken, a 300 MB part of CR bytes neither stalls the node nor gets stored, a
 * request cut off stores nothing of its cut part, and posting 1000 MB in one part keeps the node under 1 GB of RSS.
 */
import { promises as fs } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256Hex } from '../../node/archive/chunks.ts'
import { parseMultipartRelated } from '../../protocol/dicomweb/multipart.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { logOf, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import {
  failureComments,
  multipartBody,
  onePart,
  postStream,
  relatedType,
  type StowAnswer,
  storedSops
} from '../helpers/stow.ts'

let consortium: ScratchConsortium
let node: StartedNode
const started: StartedNode[] = []
const MiB = 1024 * 1024

test.before(async () => {
  consortium = await createScratchConsortium()
  node = await startNode(await consortium.member('Stow Site', 'site'))
  started.push(node)
})

test.after(async () => {
  await Promise.all(
    started.map(async n => {
      await n.kill()
    })
  )
})

/** POSTs a STOW-RS body to the node, as a client streams it; with `stopAfter`, cut off after that many bytes. */
async function stow(
  n: StartedNode,
  contentType: string,
  pieces: Iterable<Uint8Array>,
  stopAfter?: number
): Promise<StowAnswer | undefined> {
  const headers = { authorization: `Bearer ${n.token}`, 'content-type': contentType }
  return await postStream(`${n.http}/dicom-web/studies`, headers, pieces, stopAfter === undefined ? {} : { stopAfter })
}

const dicomJson = { headers: { accept: 'application/dicom+json' } }
const dicomFiles = { headers: { accept: 'multipart/related; type="application/dicom"' } }

async function wado(n: StartedNode, path: string): Promise<Uint8Array[]> {
  const response = await n.fetch(`/dicom-web${path}`, dicomFiles)
  assert.is(response.status, 200, `GET ${path}`)
  const body = new Uint8Array(await response.arrayBuffer())
  return parseMultipartRelated(body, response.headers.get('content-type') ?? '').map(part => part.body)
}

/** The node's RSS now and at its highest so far, in MB (10^6 bytes; Linux /proc). */
async function memoryOf(n: StartedNode): Promise<{ rss: number; peak: number }> {
  const status = await fs.readFile(`/proc/${n.process.pid}/status`, 'utf8')
  const mb = (field: string): number => {
    const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]
    return (Number(kib ?? Number.NaN) * 1024) / 1e6
  }
  return { rss: mb('VmRSS'), peak: mb('VmHWM') }
}

/** Polls GET /api/health every 100 ms until `stop()`, and keeps the slowest answer's time. */
function watchHealth(n: StartedNode): { stop: () => Promise<{ slowestMs: number; polls: number; failures: number }> } {
  let running = true
  let slowestMs = 0
  let polls = 0
  let failures = 0
  const loop = (async () => {
    while (running) {
      const start = performance.now()
      const ok = await fetch(`${n.http}/api/health`, { signal: AbortSignal.timeout(5000) }).then(
        r => r.ok,
        () => false
      )
      const ms = performance.now() - start
      polls++
      if (!ok) failures++
      slowestMs = Math.max(slowestMs, ms)
      await new Promise(resolve => setTimeout(resolve, Math.max(0, 100 - ms)))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return { slowestMs, polls, failures }
    }
  }
}

test('several generated CT instances in one STOW-RS request come back byte-identical through WADO-RS', async () => {
  const study = await generateCt({ out: await tempDir(), slices: 5, series: 2, rows: 128, columns: 128, seed: 1701 })
  const files = await Promise.all(study.files.map(async path => await fs.readFile(path)))
  const answer = await stow(node, relatedType('e2e-several'), multipartBody(files, 'e2e-several', 10_000))
  assert.is(answer?.status, 200, JSON.stringify(answer?.json))
  assert.is(storedSops(answer).length, 10)
  const back = await wado(node, `/studies/${study.studyInstanceUid}`)
  assert.is(back.length, 10)
  const sent = new Set(files.map(file => sha256Hex(file)))
  for (const file of back) assert.ok(sent.has(sha256Hex(file)), 'an instance came back altered')
})

test('the 73-character boundary Orthanc sends is taken', async () => {
  const study = await generateCt({ out: await tempDir(), slices: 1, rows: 64, columns: 64, seed: 1702 })
  const file = await fs.readFile(study.files[0] as string)
  const boundary = '5f5a3b8e-1d0c-4f0e-9c7a-2b6d8e9f0a1b-7c3e2d1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f'
  assert.is(boundary.length, 73)
  const answer = await stow(node, relatedType(boundary), multipartBody([file], boundary))
  assert.is(answer?.status, 200, JSON.stringify(answer?.json))
  const [back] = await wado(node, `/studies/${study.studyInstanceUid}`)
  assert.is(sha256Hex(back as Uint8Array), sha256Hex(file))
})

test('300 MB of CR in a part: /api/health answers within 1 s throughout; the part is refused, with why', async () => {
  const health = watchHealth(node)
  const cr = Buffer.alloc(MiB, 0x0d)
  const boundary = `radmesh-${'c'.repeat(32)}`
  const answer = await stow(node, relatedType(boundary), onePart(boundary, cr, cr, 300 * MiB))
  const { slowestMs, polls, failures } = await health.stop()
  const peak = (await memoryOf(node)).peak
  process.stdout.write(
    `  [300 MB of CR: HTTP ${answer?.status}; slowest /api/health ${slowestMs.toFixed(0)} ms ` +
      `over ${polls} polls, ${failures} failed; node RSS peak ${peak.toFixed(0)} MB; ` +
      `${failureComments(answer).join(' | ')}]\n`
  )
  assert.is(answer?.status, 409, JSON.stringify(answer?.json))
  assert.match(failureComments(answer)[0] ?? '', /^part 1: \S/)
  assert.ok(slowestMs < 1000, `/api/health took ${slowestMs.toFixed(0)} ms while the part was posted`)
  assert.is(failures, 0)
  assert.ok(polls >= 2, `${polls} polls`)
})

test('a request cut off mid-part stores nothing of that part, shows no half of it, and the node stays up', async () => {
  const before = await generateCt({ out: await tempDir(), slices: 1, rows: 128, columns: 128, seed: 1703 })
  const cut = await generateCt({ out: await tempDir(), slices: 1, rows: 512, columns: 512, seed: 1704 })
  const whole = await fs.readFile(before.files[0] as string)
  const cutFile = await fs.readFile(cut.files[0] as string)
  const pieces = [...multipartBody([whole, cutFile], 'e2e-cut', 16 * 1024)]
  assert.is(await stow(node, relatedType('e2e-cut'), pieces, whole.length + cutFile.length / 2), undefined)
  // The whole first part went in as it arrived; the cut one is nowhere.
  await waitFor('the first part to be listed', async () => {
    const response = await node.fetch(`/dicom-web/studies?StudyInstanceUID=${before.studyInstanceUid}`, dicomJson)
    return response.status === 200 && ((await response.json()) as unknown[]).length === 1
  })
  await new Promise(resolve => setTimeout(resolve, 500))
  const listed = await node.fetch(`/dicom-web/studies?StudyInstanceUID=${cut.studyInstanceUid}`, dicomJson)
  assert.equal(listed.status === 200 ? await listed.json() : [], [])
  const retrieved = await node.fetch(`/dicom-web/studies/${cut.studyInstanceUid}`, dicomFiles)
  assert.is(retrieved.status, 404)
  assert.is((await node.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
  // Logged as what it is, not as a failure of the node.
  const log = await logOf(node.home)
  assert.ok(
    log.some(entry => entry['event'] === 'stow-cut-off' && entry['part'] === 2),
    'the cut-off is logged'
  )
  assert.not.ok(
    log.some(entry => Number(entry['level']) >= 50),
    JSON.stringify(log.filter(entry => Number(entry['level']) >= 50))
  )
  // Sent again whole, it goes in.
  const again = await stow(node, relatedType('e2e-cut'), multipartBody([cutFile], 'e2e-cut'))
  assert.is(again?.status, 200, JSON.stringify(again?.json))
})

/**
 * A Part 10 CT of 22360 x 22360 16-bit pixels (999,939,200 bytes of pixel data): a generated 64 x 64 CT with its
 * Rows, Columns and Pixel Data length rewritten. Returns the bytes before the pixel data, and the file's length.
 */
async function hugeCtHead(): Promise<{ head: Buffer; length: number; studyUid: string }> {
  const study = await generateCt({ out: await tempDir(), slices: 1, rows: 64, columns: 64, seed: 1705 })
  const file = await fs.readFile(study.files[0] as string)
  const side = 22360
  for (const element of [0x10, 0x11]) {
    // Rows, Columns: (0028,0010) and (0028,0011), US
    const at = file.indexOf(Buffer.from([0x28, 0x00, element, 0x00, 0x55, 0x53, 0x02, 0x00]))
    assert.ok(at > 0)
    file.writeUInt16LE(side, at + 8)
  }
  const pixels = file.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0x00, 0x00])) // (7FE0,0010) OW
  assert.ok(pixels > 0)
  assert.is(pixels + 12 + file.readUInt32LE(pixels + 8), file.length, 'Pixel Data is the last element')
  const pixelBytes = side * side * 2
  file.writeUInt32LE(pixelBytes, pixels + 8)
  return { head: file.subarray(0, pixels + 12), length: pixels + 12 + pixelBytes, studyUid: study.studyInstanceUid }
}

test('1000 MB posted in one part: the node stays under 1 GB of RSS', async () => {
  const big = await startNode(await consortium.member('Stow Big Site', 'site'))
  started.push(big)
  const { head, length, studyUid } = await hugeCtHead()
  const atStart = await memoryOf(big)
  const health = watchHealth(big)
  const pixels = Buffer.alloc(MiB, 0x11)
  const t0 = performance.now()
  const answer = await stow(big, relatedType('e2e-big-one'), onePart('e2e-big-one', head, pixels, length))
  const seconds = (performance.now() - t0) / 1000
  const { slowestMs } = await health.stop()
  const after = await memoryOf(big)
  process.stdout.write(
    `  [1000 MB in one part: HTTP ${answer?.status} in ${seconds.toFixed(1)} s; node RSS ` +
      `${atStart.rss.toFixed(0)} MB at start, peak ${after.peak.toFixed(0)} MB; ` +
      `slowest /api/health ${slowestMs.toFixed(0)} ms; ${failureComments(answer).join(' | ')}]\n`
  )
  assert.is(answer?.status, 200, JSON.stringify(answer?.json))
  const listed = await big.fetch(`/dicom-web/studies?StudyInstanceUID=${studyUid}`, dicomJson)
  assert.is(((await listed.json()) as unknown[]).length, 1)
  assert.ok(after.peak < 1000, `the node's RSS peaked at ${after.peak.toFixed(0)} MB`)
})

test.run()
