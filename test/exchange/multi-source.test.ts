/**
 * A fetch from two holders at once, over real libp2p (TCP, Noise, Yamux), each holder behind its own
 * rate-limited proxy: both links carry a share of the chunks, in proportion to their rates, and the study is
 * stored byte for byte as the site has it.
 */
import { promises as fs } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { member, STUDY, version } from './helpers.ts'
import { fetchFromHolders, type Holder, holderBehindProxy, type ServedStudy } from './tcp-helpers.ts'

const site = await member()
const second = await member()
const me = await member()
const dir = await tempDir()
const ct = await generateCt({ out: dir, slices: 24, rows: 512, columns: 512, seed: 7, studyInstanceUid: STUDY })
const files = await Promise.all(ct.files.map(async file => await fs.readFile(file)))
const served: ServedStudy = { origin: site, version: await version(site, files), files, reader: me }

/** The reader fetches from the site and the second holder, each through its own proxy; bytes over each link. */
async function fetchFromBoth(siteMbit: number, secondMbit: number): Promise<{ site: number; second: number }> {
  const holders: Holder[] = []
  try {
    holders.push(await holderBehindProxy(site, served, { mbit: siteMbit }))
    holders.push(await holderBehindProxy(second, served, { mbit: secondMbit }))
    const { availability } = await fetchFromHolders(served, holders, { timeoutMs: 60_000 })
    const sources = availability.sources ?? {}
    assert.ok((sources[site.peerId] ?? 0) > 0 && (sources[second.peerId] ?? 0) > 0, 'chunks came from both holders')
    const moved = holders.map(({ proxy }) => proxy.bytesFromTarget)
    const mb = (bytes: number | undefined): string => `${((bytes ?? 0) / 1e6).toFixed(2)} MB`
    const rates = `${siteMbit}:${secondMbit} Mbit/s`
    process.stdout.write(`\n    [${rates}] site link ${mb(moved[0])}, second holder's ${mb(moved[1])}\n`)
    return { site: moved[0] as number, second: moved[1] as number }
  } finally {
    await Promise.all(holders.map(async holder => await holder.stop()))
  }
}

test('two holders behind links of the same rate each carry a fair share of the study', async () => {
  const moved = await fetchFromBoth(20, 20)
  const share = moved.site / (moved.site + moved.second)
  assert.ok(share > 0.25 && share < 0.75, `the site's link carried ${(share * 100).toFixed(0)} %`)
})

test('a holder behind a link three times as fast carries most of the study', async () => {
  const moved = await fetchFromBoth(30, 10)
  const share = moved.site / (moved.site + moved.second)
  // 75 % is the proportional share; the first second, before any rate is measured, is split evenly.
  assert.ok(share > 0.55, `the fast link carried ${(share * 100).toFixed(0)} %`)
})

test.after(async () => {
  await fs.rm(dir, { recursive: true, force: true })
})

test.run()
