/**
 * The chunks protocols across radmesh versions, over real libp2p (TCP, Noise, Yamux) through a counting
 * proxy: a member that speaks only `/radmesh/chunks/1.0.0` fetches from one that speaks 2.0.0 and the other
 * way round (libp2p settles on the newest both speak), and between two members on 2.0.0 the phantom CT moves
 * compressed. Every fetch stores the instances byte for byte as the site has them.
 */
import { promises as fs } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import { CHUNKS_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { PackChoice } from '../../node/exchange/pack-choice.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { member, STUDY, version } from './helpers.ts'
import { fetchFromHolders, holderBehindProxy, type ServedStudy } from './tcp-helpers.ts'

const site = await member()
const me = await member()
const dir = await tempDir()
const ct = await generateCt({ out: dir, slices: 16, rows: 512, columns: 512, seed: 5, studyInstanceUid: STUDY })
const files = await Promise.all(ct.files.map(async file => await fs.readFile(file)))
const served: ServedStudy = { origin: site, version: await version(site, files), files, reader: me }

/**
 * The site serving the study on the chunks protocols given, and a reader proposing those given, dialling
 * the site through a proxy; the fetch to its end. Returns the bytes that crossed the proxy.
 */
async function fetchAcross(servedOn: string[], proposed: string[]): Promise<number> {
  const holder = await holderBehindProxy(site, served, { chunkProtocols: servedOn })
  try {
    // Packed whatever the pace: on loopback a busy reader would rightly ask for sealed chunks (pack-choice.ts).
    await fetchFromHolders(served, [holder], { chunkProtocols: proposed, packing: new PackChoice({ adaptive: false }) })
    return holder.proxy.bytesToTarget + holder.proxy.bytesFromTarget
  } finally {
    await holder.stop()
  }
}

const studyBytes = files.reduce((sum, file) => sum + file.byteLength, 0)
const report = (what: string, moved: number): void => {
  process.stdout.write(
    `\n    [${what}] study ${(studyBytes / 1e6).toFixed(1)} MB, ${(moved / 1e6).toFixed(2)} MB ` +
      `on the wire (${(moved / studyBytes).toFixed(3)}x)\n`
  )
}

test('a reader on chunks 1.0.0 only fetches from a site on 2.0.0: sealed chunks, the study whole', async () => {
  const moved = await fetchAcross([CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL], [CHUNKS_PROTOCOL])
  report('1.0.0 reader', moved)
  assert.ok(moved > studyBytes, 'sealed chunks are not smaller than the study')
})

test('a reader on 2.0.0 fetches from a site on 1.0.0 only: it falls back, the study whole', async () => {
  const moved = await fetchAcross([CHUNKS_PROTOCOL], [CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL])
  report('1.0.0 site', moved)
  assert.ok(moved > studyBytes)
})

test('between two members on 2.0.0 the phantom CT moves packed: under half its size on the wire', async () => {
  const moved = await fetchAcross([CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL], [CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL])
  report('2.0.0 both', moved)
  assert.ok(moved < 0.5 * studyBytes, `moved ${moved} bytes for a ${studyBytes}-byte study`)
})

test.after(async () => {
  await fs.rm(dir, { recursive: true, force: true })
})

test.run()
