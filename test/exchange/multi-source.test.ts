/**
 * A fetch from two holders at once, over real libp2p (TCP, Noise, Yamux), each holder behind its own
 * rate-limited proxy: both links carry a share of the chunks, in proportion to their rates, and the study is
 * stored byte for byte as the site has it.
 */
import { promises as fs } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { StudyFetch } from '../../node/exchange/fetch.ts'
import { Holdings } from '../../node/exchange/holdings.ts'
import { ExchangeServer } from '../../node/exchange/serve.ts'
import { VersionCheck } from '../../node/exchange/verify.ts'
import type { Identity } from '../../node/identity/keys.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import { CHUNKS_PROTOCOL, MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { type FaultProxy, startFaultProxy } from '../../scripts/lib/fault-proxy.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { CONSORTIUM, MemoryArchive, MemoryVersions, member, STUDY, version, within, wrapFor } from './helpers.ts'

const site = await member()
const second = await member()
const me = await member()
const dir = await tempDir()
const ct = await generateCt({ out: dir, slices: 24, rows: 512, columns: 512, seed: 7, studyInstanceUid: STUDY })
const files = await Promise.all(ct.files.map(async file => await fs.readFile(file)))
const study = await version(site, files)
const silent = pino({ level: 'silent' })
const audit = { append: async () => undefined as never }

const host = async (identity: Identity, listen: boolean): Promise<Libp2p> =>
  await createLibp2p({
    privateKey: identity.privateKey,
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })

/** A member holding the whole study and serving it, behind a proxy of `mbit` Mbit/s each way. */
async function holderBehind(identity: Identity, mbit: number): Promise<{ node: Libp2p; proxy: FaultProxy }> {
  const node = await host(identity, true)
  const versions = new MemoryVersions(study)
  versions.wraps.set(me.peerId, await wrapFor(study, me, site))
  const holdings = new Holdings({ archive: new MemoryArchive(study, files), versions })
  const server = new ExchangeServer(
    { versions, holdings, audit, penalties: new PeerPenalties(), log: silent },
    {
      timeoutMs: 5000
    }
  )
  await node.handle(MANIFEST_PROTOCOL, server.handleManifest)
  await node.handle(CHUNKS_PROTOCOL_2, server.handleChunks2)
  await node.handle(CHUNKS_PROTOCOL, server.handleChunks)
  const port = Number(/\/tcp\/(\d+)/.exec(node.getMultiaddrs()[0]?.toString() ?? '')?.[1])
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, bitsPerSecond: mbit * 1e6 })
  return { node, proxy }
}

/** The reader fetches from the site and the second holder, each through its own proxy; bytes over each link. */
async function fetchFromBoth(siteMbit: number, secondMbit: number): Promise<{ site: number; second: number }> {
  const holders = [await holderBehind(site, siteMbit), await holderBehind(second, secondMbit)]
  const reader = await host(me, false)
  try {
    for (const [i, identity] of [site, second].entries()) {
      await reader.dial(multiaddr(`/ip4/127.0.0.1/tcp/${holders[i]?.proxy.port}/p2p/${identity.peerId}`))
    }
    const penalties = new PeerPenalties()
    const registry = { isMember: () => true }
    const versions = new MemoryVersions()
    const archive = new MemoryArchive(study)
    const check = new VersionCheck({
      identity: me,
      consortiumId: CONSORTIUM,
      registry,
      penalties,
      versions,
      log: silent
    })
    const fetch = new StudyFetch(
      { libp2p: reader, registry, penalties, archive, versions, check, audit, log: silent },
      { studyUid: STUDY, actor: { type: 'peer', id: me.peerId } }
    )
    fetch.start()
    await within(60_000, 'the fetch', fetch.settled())
    const availability = await fetch.availability()
    assert.is(availability.state, 'complete')
    for (const [i, instance] of study.index.instances.entries()) {
      assert.ok(archive.files.get(instance.sopUid)?.equals(files[i] as Buffer), `instance ${i + 1} byte for byte`)
    }
    const sources = availability.sources ?? {}
    assert.ok((sources[site.peerId] ?? 0) > 0 && (sources[second.peerId] ?? 0) > 0, 'chunks came from both holders')
    const moved = holders.map(({ proxy }) => proxy.bytesFromTarget)
    const mb = (bytes: number | undefined): string => `${((bytes ?? 0) / 1e6).toFixed(2)} MB`
    const rates = `${siteMbit}:${secondMbit} Mbit/s`
    process.stdout.write(`\n    [${rates}] site link ${mb(moved[0])}, second holder's ${mb(moved[1])}\n`)
    return { site: moved[0] as number, second: moved[1] as number }
  } finally {
    await reader.stop()
    await Promise.all(
      holders.map(async ({ node, proxy }) => {
        await node.stop()
        await proxy.close()
      })
    )
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
