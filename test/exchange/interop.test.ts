/**
 * The chunks protocols across radmesh versions, over real libp2p (TCP, Noise, Yamux) through a counting
 * proxy: a member that speaks only `/radmesh/chunks/1.0.0` fetches from one that speaks 2.0.0 and the other
 * way round (libp2p settles on the newest both speak), and between two members on 2.0.0 the phantom CT moves
 * compressed. Every fetch stores the instances byte for byte as the site has them.
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
import { Holdings } from '../../node/exchange/holdings.ts'
import { StudyFetch } from '../../node/exchange/fetch.ts'
import { ExchangeServer } from '../../node/exchange/serve.ts'
import { VersionCheck } from '../../node/exchange/verify.ts'
import type { Identity } from '../../node/identity/keys.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import { CHUNKS_PROTOCOL, MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { startFaultProxy } from '../../scripts/lib/fault-proxy.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { CONSORTIUM, MemoryArchive, MemoryVersions, member, STUDY, version, within, wrapFor } from './helpers.ts'

const site = await member()
const me = await member()
const dir = await tempDir()
const ct = await generateCt({ out: dir, slices: 16, rows: 512, columns: 512, seed: 5, studyInstanceUid: STUDY })
const files = await Promise.all(ct.files.map(async file => await fs.readFile(file)))
const study = await version(site, files)
const silent = pino({ level: 'silent' })

const host = async (identity: Identity, listen: boolean): Promise<Libp2p> =>
  await createLibp2p({
    privateKey: identity.privateKey,
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })

/**
 * The site serving the study on the chunks protocols given, and a reader proposing those given, dialling
 * the site through a proxy; the reader's fetch to its end. Returns the bytes that crossed the proxy.
 */
async function fetchAcross(served: string[], proposed: string[]): Promise<{ moved: number; fetch: StudyFetch }> {
  const siteHost = await host(site, true)
  const readerHost = await host(me, false)
  const versions = new MemoryVersions(study)
  versions.wraps.set(me.peerId, await wrapFor(study, me, site))
  const holdings = new Holdings({ archive: new MemoryArchive(study, files), versions })
  const audit = { append: async () => undefined as never }
  const server = new ExchangeServer(
    { versions, holdings, audit, penalties: new PeerPenalties(), log: silent },
    {
      timeoutMs: 5000
    }
  )
  await siteHost.handle(MANIFEST_PROTOCOL, server.handleManifest)
  for (const protocol of served) {
    await siteHost.handle(protocol, protocol === CHUNKS_PROTOCOL_2 ? server.handleChunks2 : server.handleChunks)
  }
  const port = Number(/\/tcp\/(\d+)/.exec(siteHost.getMultiaddrs()[0]?.toString() ?? '')?.[1])
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port } })
  try {
    await readerHost.dial(multiaddr(`/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${site.peerId}`))
    const penalties = new PeerPenalties()
    const registry = { isMember: () => true }
    const readerVersions = new MemoryVersions()
    const archive = new MemoryArchive(study)
    const check = new VersionCheck({
      identity: me,
      consortiumId: CONSORTIUM,
      registry,
      penalties,
      versions: readerVersions,
      log: silent
    })
    const fetch = new StudyFetch(
      { libp2p: readerHost, registry, penalties, archive, versions: readerVersions, check, audit, log: silent },
      { studyUid: STUDY, actor: { type: 'peer', id: me.peerId }, chunkProtocols: proposed }
    )
    fetch.start()
    await within(30_000, 'the fetch', fetch.settled())
    assert.is((await fetch.availability()).state, 'complete')
    for (const [i, instance] of study.index.instances.entries()) {
      assert.ok(archive.files.get(instance.sopUid)?.equals(files[i] as Buffer), `instance ${i + 1} byte for byte`)
    }
    return { moved: proxy.bytesToTarget + proxy.bytesFromTarget, fetch }
  } finally {
    await Promise.all([readerHost.stop(), siteHost.stop()])
    await proxy.close()
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
  const { moved } = await fetchAcross([CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL], [CHUNKS_PROTOCOL])
  report('1.0.0 reader', moved)
  assert.ok(moved > studyBytes, 'sealed chunks are not smaller than the study')
})

test('a reader on 2.0.0 fetches from a site on 1.0.0 only: it falls back, the study whole', async () => {
  const { moved } = await fetchAcross([CHUNKS_PROTOCOL], [CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL])
  report('1.0.0 site', moved)
  assert.ok(moved > studyBytes)
})

test('between two members on 2.0.0 the phantom CT moves packed: under half its size on the wire', async () => {
  const { moved } = await fetchAcross([CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL], [CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL])
  report('2.0.0 both', moved)
  assert.ok(moved < 0.5 * studyBytes, `moved ${moved} bytes for a ${studyBytes}-byte study`)
})

test.after(async () => {
  await fs.rm(dir, { recursive: true, force: true })
})

test.run()
