/**
 * What a node can serve of a study version (Holdings): every chunk of an instance whole in its archive, sealed
 * again as the manifest lists it, and the chunks a fetch of its own keeps; nothing of a version it does not hold
 * as the latest, and nothing past a chunk's end.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Holdings } from '../../node/exchange/holdings.ts'
import { chunkMatches } from '../../node/exchange/verify.ts'
import { TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import { MemoryArchive, MemoryVersions, member, STUDY, version } from './helpers.ts'

const site = await member()
/** Three instances: one of a chunk, one of three chunks, one of a chunk (chunks 0, 1-3, 4). */
const files = [randomBytes(5000), randomBytes(2 * TRANSFER_CHUNK_PLAINTEXT + 10), randomBytes(800)]
const study = await version(site, files)

const bitsOf = (have: Uint8Array, count: number): number[] =>
  Array.from({ length: count }, (_, i) => i).filter(i => ((have[i >> 3] as number) & (1 << (i & 7))) !== 0)

test('the chunks held are those of the instances whole in the archive and those a fetch keeps', async () => {
  const archive = new MemoryArchive(study, [files[0] as Buffer, files[2] as Buffer])
  const versions = new MemoryVersions(study)
  versions.partial.set(2, study.manifest.chunkHashes[2] as string)
  const have = await new Holdings({ archive, versions }).have(study)
  assert.is(have.byteLength, 1)
  assert.equal(bitsOf(have, 5), [0, 2, 4])
  assert.equal(
    bitsOf(
      await new Holdings({ archive: new MemoryArchive(study), versions: new MemoryVersions(study) }).have(study),
      5
    ),
    [],
    'an empty archive holds nothing'
  )
})

test('every chunk of a whole instance is served sealed exactly as the manifest lists it', async () => {
  const holdings = new Holdings({ archive: new MemoryArchive(study, files), versions: new MemoryVersions(study) })
  const { versionId } = study.manifest
  for (let index = 0; index < 5; index++) {
    const sealed = await holdings.requested({ studyUid: STUDY, versionId, index, offset: 0 })
    assert.ok(sealed !== undefined && chunkMatches(study.manifest, index, sealed), `chunk ${index}`)
  }
})

test('the archive index is asked once per instance found whole, not again for each chunk or each answer', async () => {
  const archive = new MemoryArchive(study, [files[0] as Buffer, files[1] as Buffer])
  const asked: string[] = []
  const lookup = archive.instance.bind(archive)
  archive.instance = async (sopUid: string) => {
    asked.push(sopUid)
    return await lookup(sopUid)
  }
  const holdings = new Holdings({ archive, versions: new MemoryVersions(study) })
  const { versionId } = study.manifest
  await holdings.have(study)
  await holdings.have(study)
  for (let index = 0; index < 4; index++) {
    const sealed = await holdings.requested({ studyUid: STUDY, versionId, index, offset: 0 })
    assert.ok(sealed !== undefined && chunkMatches(study.manifest, index, sealed), `chunk ${index}`)
  }
  const [first, second, third] = study.index.instances.map(instance => instance.sopUid)
  // The third instance is not here: asked again each time, as it may have come meanwhile.
  assert.equal(asked.sort(), [first, second, third, third].sort())
  assert.is(await holdings.requested({ studyUid: STUDY, versionId, index: 4, offset: 0 }), undefined)
})

test("a chunk kept by a fetch is served from the archive's kept chunks while its instance is not whole", async () => {
  const archive = new MemoryArchive(study)
  const holdings = new Holdings({ archive, versions: new MemoryVersions(study) })
  const { versionId } = study.manifest
  const donor = new Holdings({ archive: new MemoryArchive(study, files), versions: new MemoryVersions(study) })
  const sealed = (await donor.sealedChunk(study, 3)) as Buffer
  assert.is(await holdings.requested({ studyUid: STUDY, versionId, index: 3, offset: 0 }), undefined, 'not yet')
  await archive.keepChunk(sealed)
  const served = await holdings.requested({ studyUid: STUDY, versionId, index: 3, offset: 0 })
  assert.ok(served?.equals(sealed))
})

test("nothing is served of another study or version, past the last chunk, or from past a chunk's end", async () => {
  const holdings = new Holdings({ archive: new MemoryArchive(study, files), versions: new MemoryVersions(study) })
  const { versionId, chunkSizes } = study.manifest
  const ask = (request: Partial<{ studyUid: string; versionId: string; index: number; offset: number }>) =>
    holdings.requested({ studyUid: STUDY, versionId, index: 0, offset: 0, ...request })
  assert.is(await ask({ studyUid: `${STUDY}.9` }), undefined)
  assert.is(await ask({ versionId: randomBytes(16).toString('hex') }), undefined)
  assert.is(await ask({ index: 5 }), undefined)
  assert.is(await ask({ offset: chunkSizes[0] as number }), undefined)
  assert.ok((await ask({ offset: (chunkSizes[0] as number) - 1 })) !== undefined, 'the last byte of a chunk is served')
  const older = await version(site, files)
  const stale = new Holdings({ archive: new MemoryArchive([study, older], files), versions: new MemoryVersions(study) })
  const { versionId: olderId } = older.manifest
  assert.is(
    await stale.requested({ studyUid: STUDY, versionId: olderId, index: 0, offset: 0 }),
    undefined,
    'a version that is not the latest here'
  )
  const held = new MemoryVersions(study)
  held.earlier.push(older)
  const grown = new Holdings({ archive: new MemoryArchive([study, older], files), versions: held })
  const chunk = await grown.requested({ studyUid: STUDY, versionId: olderId, index: 0, offset: 0 })
  assert.ok(chunk !== undefined, 'an earlier version still held open is served (a study that grew during a fetch)')
  assert.is(chunk.byteLength, older.manifest.chunkSizes[0])
})

test.run()
