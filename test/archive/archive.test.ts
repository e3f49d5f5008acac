/**
 * The archive on a real LevelDB and chunk store: what goes in comes back byte-identical, what is refused
 * says why, the same UID twice is decided as documented, and no patient name is readable on disk.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256Hex } from '../../node/hash.ts'
import { InvalidDicomError } from '../../node/dicom/errors.ts'
import { openArchive } from '../helpers/archive.ts'
import { corpusFiles, PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { filesUnder, replaceSameLength } from '../helpers/dicom.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const actor = { type: 'cli', id: 'test' } as const

test('every corpus file is stored and read back byte-identical, or refused with a reason', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  const outcomes: Record<string, string> = {}
  for (const path of await corpusFiles()) {
    const bytes = await fs.readFile(path)
    const name = path.slice(PYDICOM_CORPUS.length + 1)
    try {
      const { outcome, instance } = await archive.store(bytes, actor)
      outcomes[name] = outcome
      if (outcome === 'stored') assert.is(sha256Hex(await archive.read(instance)), sha256Hex(bytes), name)
    } catch (error) {
      assert.instance(error, InvalidDicomError, `${name}: ${(error as Error).message}`)
      outcomes[name] = `refused:${(error as InvalidDicomError).reason}`
    }
  }
  assert.is(outcomes['CT_small.dcm'], 'stored')
  assert.is(outcomes['MR_truncated.dcm'], 'refused:truncated')
  assert.is(outcomes['rtplan_truncated.dcm'], 'refused:truncated')
  assert.is(outcomes['no_meta.dcm'], 'refused:not-part10')
  assert.is(outcomes['meta_missing_tsyntax.dcm'], 'refused:bad-meta')
  const refused = Object.entries(outcomes)
    .filter(([, o]) => o.startsWith('refused'))
    .map(([name]) => name)
  assert.equal(
    refused,
    [
      'ExplVR_BigEndNoMeta.dcm',
      'ExplVR_LitEndNoMeta.dcm',
      'MR_truncated.dcm',
      'SC_rgb_jpeg.dcm',
      'UN_sequence.dcm',
      'empty_charset_LEI.dcm',
      'meta_missing_tsyntax.dcm',
      'nested_priv_SQ.dcm',
      'no_meta.dcm',
      'no_meta_group_length.dcm',
      'priv_SQ.dcm',
      'rtplan_truncated.dcm',
      'rtstruct.dcm'
    ],
    JSON.stringify(outcomes)
  )
  // The corpus reuses SOP Instance UIDs (one image in several syntaxes): the first is kept.
  assert.ok(Object.values(outcomes).includes('kept-existing'))
  await close()
})

test("an object expected to have a SHA-256 (a signed manifest's) is stored only when it has it", async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  const bytes = await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm'))
  const other = sha256Hex(Buffer.concat([bytes, Buffer.from('x')]))
  const refused = await archive.store(bytes, actor, { sha256: other }).then(
    () => undefined,
    (error: unknown) => error as Error
  )
  assert.match(refused?.message ?? 'stored', /SHA-256 is not/)
  // Nothing of it was kept: the same bytes with their own hash are stored anew, not a duplicate.
  const stored = await archive.store(bytes, actor, { sha256: sha256Hex(bytes) })
  assert.is(stored.outcome, 'stored')
  assert.is(stored.instance.sha256, sha256Hex(bytes))
  await close()
})

test('the same file twice is a duplicate; study and series aggregates count it once', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  const bytes = await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm'))
  const first = await archive.store(bytes, actor)
  const second = await archive.store(bytes, actor)
  assert.is(first.outcome, 'stored')
  assert.is(second.outcome, 'duplicate')
  const study = await archive.study(first.instance.studyUid)
  assert.is(study?.instanceCount, 1)
  assert.is(study?.seriesCount, 1)
  assert.equal(study?.modalities, ['CT'])
  assert.is(study?.attributes['00100010'], 'CompressedSamples^CT1')
  const listed = []
  for await (const instance of archive.instancesOf(first.instance.studyUid)) listed.push(instance.sopUid)
  assert.equal(listed, [first.instance.sopUid])
  await close()
})

test(
  'copies of one instance stored at once: one is stored, the rest are ' +
    'duplicates or kept-existing; counted once, even across a reopen',
  async () => {
    const home = await tempDir()
    let opened = await openArchive(home)
    const bytes = await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm'))
    const other = replaceSameLength(bytes, 'CompressedSamples^CT1', 'CompressedSamples^CT2')
    const results = await Promise.all(
      [bytes, bytes, other, bytes, other].map(async file => await opened.archive.store(file, actor))
    )
    assert.equal(results.map(r => r.outcome).sort(), [
      'duplicate',
      'duplicate',
      'kept-existing',
      'kept-existing',
      'stored'
    ])
    const kept = results.find(r => r.outcome === 'stored')?.instance
    assert.equal(
      results.map(r => r.instance.sha256),
      Array(5).fill(kept?.sha256),
      'every caller is told about the copy that was kept'
    )
    assert.is((await opened.archive.study(kept?.studyUid ?? ''))?.instanceCount, 1)
    assert.is(sha256Hex(await opened.archive.read(kept as NonNullable<typeof kept>)), sha256Hex(bytes))
    // A second instance of the study after a reopen builds on the aggregates on disk, not on a stale memory.
    await opened.close()
    opened = await openArchive(home)
    const uid = kept?.sopUid ?? ''
    const sibling = replaceSameLength(
      replaceSameLength(bytes, uid, `${uid.slice(0, -1)}9`),
      uid,
      `${uid.slice(0, -1)}9`
    )
    assert.is((await opened.archive.store(sibling, actor)).outcome, 'stored')
    const study = await opened.archive.study(kept?.studyUid ?? '')
    assert.equal([study?.instanceCount, study?.seriesCount, study?.bytes], [2, 1, bytes.byteLength * 2])
    await opened.close()
  }
)

test(
  'a C-STORE whose UID was looked up as its data arrived is a ' +
    'duplicate, not a second copy, when the instance was stored meanwhile',
  async () => {
    const home = await tempDir()
    const { archive, close } = await openArchive(home)
    const bytes = await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm'))
    const first = await archive.store(bytes, actor)
    const other = replaceSameLength(
      replaceSameLength(bytes, first.instance.sopUid, `${first.instance.sopUid.slice(0, -2)}77`),
      first.instance.sopUid,
      `${first.instance.sopUid.slice(0, -2)}77`
    )
    const sopUid = `${first.instance.sopUid.slice(0, -2)}77`
    // The lookup begins when the request announces the UID, and finds nothing; the same instance then comes
    // through another association and is committed before this data set is complete.
    const incoming = archive.incoming(sopUid)
    assert.is((await archive.store(other, actor)).outcome, 'stored')
    incoming.write(other)
    assert.is((await archive.storeIncoming(incoming, actor)).outcome, 'duplicate')
    const study = await archive.study(first.instance.studyUid)
    assert.equal([study?.instanceCount, study?.bytes], [2, bytes.byteLength * 2])
    // A lookup that found nothing and saw no commit since is taken as it is.
    const third = replaceSameLength(
      replaceSameLength(bytes, first.instance.sopUid, `${first.instance.sopUid.slice(0, -2)}78`),
      first.instance.sopUid,
      `${first.instance.sopUid.slice(0, -2)}78`
    )
    const next = archive.incoming(`${first.instance.sopUid.slice(0, -2)}78`)
    next.write(third)
    assert.is((await archive.storeIncoming(next, actor)).outcome, 'stored')
    await close()
  }
)

test('a canary patient name appears in no file under HOME after storing, indexing and auditing', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  const canary = 'ZZCANARY^QUOKKA7731X'
  const bytes = replaceSameLength(
    await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm')),
    'CompressedSamples^CT1',
    `${canary}1`
  )
  const { instance } = await archive.store(bytes, actor)
  assert.is((await archive.study(instance.studyUid))?.attributes['00100010'], `${canary}1`)
  await close()
  const needles = [Buffer.from(canary, 'latin1'), Buffer.from(canary, 'utf16le')]
  let files = 0
  for await (const path of filesUnder(home)) {
    files++
    const content = await fs.readFile(path)
    for (const needle of needles) assert.is(content.indexOf(needle), -1, `the canary is readable in ${path}`)
  }
  assert.ok(files > 3)
})

test('a study with no new instance for the configured time raises study-stable once', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home, 300)
  const events: Array<{ studyUid: string; instanceCount: number }> = []
  archive.onStudyStable(event => events.push(event))
  const { instance } = await archive.store(await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm')), actor)
  await new Promise(resolve => setTimeout(resolve, 150))
  assert.equal(events, [])
  await new Promise(resolve => setTimeout(resolve, 400))
  assert.is(events.length, 1)
  assert.is(events[0]?.studyUid, instance.studyUid)
  assert.is(events[0]?.instanceCount, 1)
  await close()
})

test('every new instance of a study raises study-grew at once; a duplicate does not', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home, 60_000)
  const grew: string[] = []
  archive.onStudyGrew(studyUid => grew.push(studyUid))
  const file = await fs.readFile(join(PYDICOM_CORPUS, 'CT_small.dcm'))
  const { instance } = await archive.store(file, actor)
  assert.equal(grew, [instance.studyUid], 'told as the instance is stored, long before the study is stable')
  await archive.store(file, actor)
  assert.equal(grew, [instance.studyUid], 'the same instance again is not growth')
  await close()
})

test('a damaged chunk is an error on read, never wrong bytes', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  const { instance } = await archive.store(await fs.readFile(join(PYDICOM_CORPUS, 'MR_small.dcm')), actor)
  for await (const path of filesUnder(join(home, 'chunks'))) {
    const content = await fs.readFile(path)
    // inside the first entry's body: the sealed chunk (see node/archive/pack/format.ts)
    const at = 40
    content.writeUInt8(content.readUInt8(at) ^ 0xff, at)
    await fs.writeFile(path, content)
  }
  await archive.read(instance).then(
    () => assert.unreachable('damaged bytes were returned'),
    () => {}
  )
  await close()
})

test.run()
