/**
 * A de-identified second opinion on a real archive: the copy is stored as a new study beside the original,
 * the share names the copy, and a study with one instance that must not go leaves nothing behind.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { AuditActor } from '../../node/audit/log.ts'
import { DeidentificationError } from '../../node/deid/index.ts'
import { shareDeidentified } from '../../node/deid/share.ts'
import { writeDataset } from '../../node/dicom/writer.ts'
import type { ShareResult } from '../../node/exchange/share.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { openArchive } from '../helpers/archive.ts'

const actor = { type: 'cli', id: 'test' } as const
const READER = '12D3KooWReaderReaderReaderReaderReaderReaderReader'

type Share = (studyUid: string, peerIds: string[], actor: AuditActor) => Promise<ShareResult>

function recordingShare(): { calls: string[]; share: Share } {
  const calls: string[] = []
  return {
    calls,
    share: async (studyUid, peerIds) => {
      calls.push(studyUid)
      return { studyUid, versionId: 'v1', recipients: peerIds.map(peerId => ({ peerId, announced: true })) }
    }
  }
}

test('the copy is stored as a new study with every instance, and that study is what is shared', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  try {
    const study = await generateCt({ out: join(home, 'ct'), slices: 2, series: 2, rows: 16, columns: 16, seed: 3 })
    for (const file of study.files) await archive.store(await fs.readFile(file), actor)
    const { calls, share } = recordingShare()
    const options = { retainDates: 'modified', retainPatientCharacteristics: true } as const
    const result = await shareDeidentified({ archive, share }, study.studyInstanceUid, [READER], options, actor)
    assert.is.not(result.studyUid, study.studyInstanceUid)
    assert.equal(calls, [result.studyUid])
    assert.is(result.originalStudyUid, study.studyInstanceUid)
    assert.is(result.uidMap.get(study.studyInstanceUid), result.studyUid)
    assert.ok(result.dateOffsetDays < 0)
    const copied = []
    for await (const instance of archive.instancesOf(result.studyUid)) copied.push(instance)
    assert.is(copied.length, 4)
    for (const instance of copied) {
      const bytes = await archive.read(instance)
      assert.not.ok(bytes.includes('DOE^JANE'), 'the patient name is in a stored copy')
    }
    const originals = []
    for await (const instance of archive.instancesOf(study.studyInstanceUid)) originals.push(instance)
    assert.is(originals.length, 4)
  } finally {
    await close()
  }
})

test('a study with a burned-in image is refused whole: nothing is stored, nothing shared', async () => {
  const home = await tempDir()
  const { archive, close } = await openArchive(home)
  try {
    const study = await generateCt({ out: join(home, 'ct'), slices: 2, rows: 16, columns: 16, seed: 4 })
    // The second file says its pixels carry annotation.
    const [first, second] = study.files as [string, string]
    await archive.store(await fs.readFile(first), actor)
    const burned = burnedIn(await fs.readFile(second))
    await archive.store(burned, actor)
    const { calls, share } = recordingShare()
    try {
      await shareDeidentified({ archive, share }, study.studyInstanceUid, [READER], {}, actor)
      assert.unreachable('a burned-in study was shared')
    } catch (error) {
      assert.instance(error, DeidentificationError)
      assert.is((error as DeidentificationError).reason, 'burned-in-annotation')
    }
    assert.equal(calls, [])
    let studies = 0
    for await (const _ of archive.studies()) studies++
    assert.is(studies, 1)
  } finally {
    await close()
  }
})

/** The file with Burned In Annotation (0028,0301) YES added, written by the one writer. */
function burnedIn(file: Buffer): Buffer {
  // (0028,0301) goes just before Window Center (0028,1050), explicit VR "DS", the next element the generator writes.
  const next = file.indexOf(Buffer.from([0x28, 0x00, 0x50, 0x10, 0x44, 0x53]))
  assert.ok(next > 0)
  const element = writeDataset([{ tag: 0x00280301, vr: 'CS', value: 'YES' }])
  return Buffer.concat([file.subarray(0, next), element, file.subarray(next)])
}

test.run()
