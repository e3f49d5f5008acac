/**
 * Fetching a study (StudyFetch) in-process: real servers of the exchange answer over in-memory libp2p streams,
 * archives and version stores are in memory, and what the reader checks of what holders send is checked for
 * real (manifest signatures, key wraps, chunk hashes, instance hashes).
 */
import { randomBytes } from 'node:crypto'
import { lpStream } from '@libp2p/utils'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import {
  CHUNKS_PROTOCOL,
  decodeChunkRequest,
  encodeChunkFrameHeader,
  FRAME_STATUS,
  MANIFEST_PROTOCOL
} from '../../protocol/exchange/messages.ts'
import {
  type Handler,
  holder,
  MemoryArchive,
  MemoryVersions,
  member,
  reader,
  version,
  within,
  wrapFor
} from './helpers.ts'

const me = await member()
const site = await member()
const other = await member()

/** `handlers` whose manifest answers wait `ms`: the other holder is asked for chunks first. */
const slow = (handlers: Record<string, Handler>, ms = 200): Record<string, Handler> => ({
  ...handlers,
  [MANIFEST_PROTOCOL]: async (stream, connection) => {
    await new Promise(resolve => setTimeout(resolve, ms))
    await (handlers[MANIFEST_PROTOCOL] as Handler)(stream, connection)
  }
})

async function settled(fetching: ReturnType<typeof reader>): Promise<void> {
  fetching.fetch.start()
  await within(15_000, 'the fetch', fetching.fetch.settled())
}

test('a study is fetched whole from its holder: every instance stored byte-identical, the fetch audited', async () => {
  const files = [randomBytes(200_000), randomBytes(1000), randomBytes(300_000)]
  const study = await version(site, files)
  const fetching = reader(me, { [site.peerId]: holder(study, files, { wraps: [await wrapFor(study, me, site)] }) }, [
    study
  ])
  await settled(fetching)
  const availability = await fetching.fetch.availability()
  assert.is(availability.state, 'complete')
  assert.equal([availability.instancesLocal, availability.instancesTotal], [3, 3])
  assert.is(
    availability.sources?.[site.peerId],
    study.manifest.chunkSizes.reduce((sum, size) => sum + size, 0)
  )
  for (const [i, instance] of study.index.instances.entries()) {
    assert.ok(fetching.archive.files.get(instance.sopUid)?.equals(files[i] as Buffer), `instance ${i + 1}`)
  }
  assert.equal(
    fetching.archive.stored.map(({ actor }) => actor),
    files.map(() => ({ type: 'peer', id: site.peerId }))
  )
  assert.match(JSON.stringify(fetching.audits), `fetched 3 instances from ${site.peerId}`)
})

test(
  'an instance of several chunks is kept chunk by ' + 'chunk as it arrives, and forgotten once it is stored',
  async () => {
    const files = [randomBytes(2 * TRANSFER_CHUNK_PLAINTEXT + 100)]
    const study = await version(site, files)
    const fetching = reader(me, { [site.peerId]: holder(study, files, { wraps: [await wrapFor(study, me, site)] }) }, [
      study
    ])
    await settled(fetching)
    assert.is((await fetching.fetch.availability()).state, 'complete')
    assert.equal([...fetching.archive.kept.keys()].sort(), [...study.manifest.chunkHashes].sort(), 'each chunk kept')
    assert.is(fetching.versions.partial.size, 0, 'no chunk is named as kept for the fetch once its instance is stored')
    assert.ok(fetching.archive.files.get(study.index.instances[0]?.sopUid ?? '')?.equals(files[0] as Buffer))
  }
)

test(
  'a fetch resumes from the chunks kept before a restart: ' + 'an instance all kept is stored without asking anyone',
  async () => {
    const files = [randomBytes(TRANSFER_CHUNK_PLAINTEXT + 100)]
    const study = await version(site, files)
    // What the holder would have sent, kept before the restart.
    const sent = new MemoryArchive(study, files)
    const { Holdings } = await import('../../node/exchange/holdings.ts')
    const holdings = new Holdings({ archive: sent, versions: new MemoryVersions(study) })
    const archive = new MemoryArchive(study)
    const versions = new MemoryVersions(study)
    for (const index of [0, 1]) {
      versions.partial.set(index, await archive.keepChunk((await holdings.sealedChunk(study, index)) as Buffer))
    }
    const fetching = reader(me, {}, [study], {}, { archive, versions })
    await settled(fetching)
    assert.is((await fetching.fetch.availability()).state, 'complete')
    assert.equal(
      archive.stored.map(({ actor }) => actor),
      ['resumed'].map(id => ({ type: 'peer', id }))
    )
    assert.ok(archive.files.get(study.index.instances[0]?.sopUid ?? '')?.equals(files[0] as Buffer))
    assert.match(JSON.stringify(fetching.audits), 'from the local archive')
  }
)

test("a chunk whose SHA-256 is not the manifest's is dropped; its holder is left out and counted against", async () => {
  const files = [randomBytes(100_000), randomBytes(100_000)]
  const study = await version(site, files)
  const wraps = [await wrapFor(study, me, site)]
  const fetching = reader(
    me,
    {
      [other.peerId]: holder(study, files, { wraps, corrupt: true }),
      [site.peerId]: slow(holder(study, files, { wraps }))
    },
    [study]
  )
  await settled(fetching)
  assert.is((await fetching.fetch.availability()).state, 'complete')
  for (const [i, instance] of study.index.instances.entries()) {
    assert.ok(fetching.archive.files.get(instance.sopUid)?.equals(files[i] as Buffer), `instance ${i + 1}`)
  }
  assert.ok(fetching.lines.some(line => line['code'] === 'corrupt-chunk' && line['peer'] === other.peerId))
  assert.ok(fetching.penalties.scoreOf(other.peerId) > 0)
  assert.is(fetching.penalties.scoreOf(site.peerId), 0)
})

test(
  'a frame of another chunk than asked is a bad-chunk-frame: ' + 'the holder is left out, another sends the chunk',
  async () => {
    const files = [randomBytes(50_000)]
    const study = await version(site, files)
    const wraps = [await wrapFor(study, me, site)]
    const honest = holder(study, files, { wraps, version1Only: true })
    // Answers the manifest as an honest holder would, and every chunk request with a frame of chunk 7.
    const misframing: Handler = async stream => {
      const lp = lpStream(stream)
      const request = decodeChunkRequest((await lp.read()).subarray())
      await lp.write(Buffer.concat([encodeChunkFrameHeader(FRAME_STATUS.data, 7, request.offset), Buffer.alloc(10)]))
    }
    const fetching = reader(
      me,
      {
        [other.peerId]: { ...honest, [CHUNKS_PROTOCOL]: misframing },
        [site.peerId]: slow(holder(study, files, { wraps }))
      },
      [study]
    )
    await settled(fetching)
    assert.is((await fetching.fetch.availability()).state, 'complete')
    assert.ok(fetching.lines.some(line => line['code'] === 'bad-chunk-frame' && line['peer'] === other.peerId))
    assert.ok(fetching.penalties.scoreOf(other.peerId) > 0)
    assert.is(fetching.archive.stored.length, 1)
  }
)

test('a fetch stopped while its holder is silent ends as stopped, with nothing stored', async () => {
  const files = [randomBytes(1000)]
  const study = await version(site, files)
  // The holder answers the manifest, then takes chunk requests and never answers them.
  const silent: Handler = async stream => {
    await lpStream(stream).read()
  }
  const wraps = [await wrapFor(study, me, site)]
  const handlers = { ...holder(study, files, { wraps, version1Only: true }), [CHUNKS_PROTOCOL]: silent }
  const fetching = reader(me, { [site.peerId]: handlers }, [study])
  fetching.fetch.start()
  for (let waited = 0; (await fetching.fetch.availability()).state !== 'fetching' && waited < 5000; waited += 20) {
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  await new Promise(resolve => setTimeout(resolve, 100))
  fetching.fetch.stop()
  await within(5_000, 'the stopped fetch', fetching.fetch.settled())
  assert.is((await fetching.fetch.availability()).state, 'stopped')
  assert.is(fetching.archive.stored.length, 0)
})

test.run()
