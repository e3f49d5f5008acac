/**
 * De-identified copies of real files no one here wrote (the pydicom corpus: CT, MR, an RT plan and an SR with
 * nested sequences and references, GE private tags, JPEG and JPEG 2000, implicit VR, deflate) and of a
 * generated CT study with a canary patient, read back by tools radmesh did not write: DCMTK's dcmdump must
 * parse each copy without a word on stderr, pydicom must read it, dicom3tools' dciodvfy must find no error the
 * original did not have, and no original identifier may be anywhere in the copy's bytes.
 */
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Deidentifier, type DeidentifyOptions } from '../../node/deid/index.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { CORPUS, DUMP_PY, type Dump, PYTHON, REFERENCES_PY, type References } from './pydicom.ts'

async function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return await new Promise(resolve => {
    execFile(command, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr })
    })
  })
}

async function python<T>(script: string, ...args: string[]): Promise<T> {
  const result = await run(PYTHON, ['-c', script, ...args])
  assert.is(result.code, 0, `pydicom: ${result.stderr}`)
  return JSON.parse(result.stdout) as T
}

const dump = async (file: string): Promise<Dump> => await python<Dump>(DUMP_PY, file)

async function dciodvfyErrors(file: string): Promise<Set<string>> {
  const result = await run('dciodvfy', [file])
  return new Set((result.stdout + result.stderr).split('\n').filter(line => line.startsWith('Error')))
}

/** Writes the copy, and checks what every copy must be whatever the options: a clean, readable Part 10 file. */
interface Checked {
  copy: string
  before: Dump
  after: Dump
}

async function checkCopy(original: string, bytes: Uint8Array, dir: string): Promise<Checked> {
  const copy = join(dir, `copy-${original.split('/').at(-1)}`)
  await fs.writeFile(copy, bytes)
  const dumped = await run('dcmdump', ['-M', copy])
  assert.is(dumped.code, 0, `dcmdump ${copy}: ${dumped.stderr}`)
  assert.is(dumped.stderr, '', `dcmdump ${copy} warns`)
  const before = await dump(original)
  const after = await dump(copy)
  assert.is(after.patientIdentityRemoved, 'YES')
  assert.equal(after.privateTags, [], `private tags left in ${copy}`)
  assert.is(after.metaSopInstanceUid, after.sopInstanceUid)
  assert.is.not(after.sopInstanceUid, before.sopInstanceUid)
  assert.is(after.sopClassUid, before.sopClassUid)
  assert.is(after.pixelSha256, before.pixelSha256, 'the pixel data is not what it was')
  const text = Buffer.from(bytes).toString('latin1')
  const utf8 = Buffer.from(bytes).toString('utf8')
  for (const secret of before.identifiers) {
    assert.not.ok(text.includes(secret) || utf8.includes(secret), `"${secret}" of ${original} is in the copy`)
  }
  // dciodvfy cannot read a deflated data set: the original is compared as DCMTK inflates it.
  let baseline = original
  if ((await run('dcmdump', ['-M', original])).stdout.includes('=DeflatedLittleEndianExplicit')) {
    baseline = join(dir, `inflated-${original.split('/').at(-1)}`)
    const inflated = await run('dcmconv', ['+te', original, baseline])
    assert.is(inflated.code, 0, inflated.stderr)
  }
  const errorsBefore = await dciodvfyErrors(baseline)
  const added = [...(await dciodvfyErrors(copy))].filter(line => !errorsBefore.has(line))
  assert.equal(added, [], `dciodvfy finds new errors in the copy of ${original}`)
  return { copy, before, after }
}

test("a corpus file's copy keeps its pixels and none of its identifiers; DICOM tools read it cleanly", async () => {
  const dir = await tempDir('radmesh-deid-')
  for (const name of CORPUS) {
    const original = join(PYDICOM_CORPUS, name)
    const deidentifier = new Deidentifier()
    const { after } = await checkCopy(original, deidentifier.instance(await fs.readFile(original)).bytes, dir)
    assert.equal(after.methodCodes, ['113100'], name)
    assert.is(after.temporal, 'REMOVED', name)
    assert.is(after.studyDate, '', name)
  }
})

test("every UID in a copy replaces one of the original's at the same place, references in sequences too", async () => {
  const dir = await tempDir('radmesh-deid-')
  for (const name of ['rtplan.dcm', 'test-SR.dcm', 'liver_1frame.dcm', 'CT_small.dcm']) {
    const original = join(PYDICOM_CORPUS, name)
    const deidentifier = new Deidentifier()
    const copy = join(dir, name)
    await fs.writeFile(copy, deidentifier.instance(await fs.readFile(original)).bytes)
    const before = await python<References>(REFERENCES_PY, original)
    const after = await python<References>(REFERENCES_PY, copy)
    const mapped = new Set(before.uids.map(([path, uid]) => `${path}=${deidentifier.uid(uid)}`))
    for (const [path, uid] of after.uids)
      assert.ok(mapped.has(`${path}=${uid}`), `${name}: ${path} ${uid} is not a replacement`)
    assert.ok(after.uids.length > 0 && after.uids.length <= before.uids.length, name)
    if (name === 'rtplan.dcm' || name === 'test-SR.dcm') {
      const nested = after.uids.filter(([path]) => path.includes('>') && path.endsWith('ReferencedSOPInstanceUID'))
      assert.ok(nested.length > 0, `${name}: no reference in a sequence survived to be checked`)
    }
  }
})
const CANARY = { patientName: 'CANARY^Zoë', patientId: 'CANARY-ID-7731' }

async function generatedStudy(): Promise<{ files: string[]; dir: string }> {
  const dir = await tempDir('radmesh-deid-ct-')
  const out = join(dir, 'in')
  const study = await generateCt({ out, slices: 3, series: 2, rows: 32, columns: 32, seed: 7, ...CANARY })
  return { files: study.files, dir }
}

async function copyStudy(options: DeidentifyOptions): Promise<{ before: Dump[]; after: Dump[]; offset: number }> {
  const { files, dir } = await generatedStudy()
  const deidentifier = new Deidentifier(options)
  const before: Dump[] = []
  const after: Dump[] = []
  for (const file of files) {
    const bytes = await fs.readFile(file)
    const copy = deidentifier.instance(bytes).bytes
    for (const canary of [CANARY.patientName, CANARY.patientId, 'Zoë', (await dump(file)).patientBirthDate ?? '']) {
      assert.ok(canary.length > 0)
      assert.not.ok(copy.includes(Buffer.from(canary, 'utf8')), `"${canary}" is in the copy (UTF-8)`)
      assert.not.ok(copy.includes(Buffer.from(canary, 'latin1')), `"${canary}" is in the copy (Latin-1)`)
    }
    const checked = await checkCopy(file, copy, dir)
    before.push(checked.before)
    after.push(checked.after)
  }
  return { before, after, offset: deidentifier.dateOffsetDays }
}

const uniq = (values: Array<string | null>): Set<string | null> => new Set(values)
const plusDays = (date: string, days: number): string => {
  const day = Date.UTC(Number(date.slice(0, 4)), Number(date.slice(4, 6)) - 1, Number(date.slice(6, 8)))
  return new Date(day + days * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '')
}

test('a generated CT study has one new study UID, its series apart, every date moved by the same days', async () => {
  const { before, after, offset } = await copyStudy({ retainDates: 'modified', retainPatientCharacteristics: true })
  assert.is(uniq(after.map(d => d.studyInstanceUid)).size, 1)
  assert.is.not([...uniq(after.map(d => d.studyInstanceUid))][0], before[0]?.studyInstanceUid)
  assert.is(uniq(after.map(d => d.frameOfReferenceUid)).size, 1)
  const seriesOf = (dumps: Dump[]) => dumps.map(d => dumps.findIndex(e => e.seriesInstanceUid === d.seriesInstanceUid))
  assert.equal(seriesOf(after), seriesOf(before))
  assert.is(uniq(after.map(d => d.seriesInstanceUid)).size, 2)
  assert.ok(offset <= -365 && offset >= -3650)
  before.forEach((original, i) => {
    const copy = after[i] as Dump
    for (const key of ['studyDate', 'seriesDate', 'acquisitionDate', 'contentDate', 'instanceCreationDate'] as const)
      assert.is(copy[key], plusDays(original[key] as string, offset), key)
    assert.is(copy.studyTime, original.studyTime)
    assert.is(copy.patientSex, 'O')
    assert.is(copy.patientAge, original.patientAge)
    assert.is(copy.patientBirthDate, '')
    assert.equal(copy.methodCodes, ['113100', '113107', '113108'])
    assert.is(copy.temporal, 'MODIFIED')
    assert.match(copy.patientId ?? '', /^DEID-[0-9A-F]{8}$/)
  })
})

test('Full Dates keeps every date; without the options dates and patient characteristics go', async () => {
  const full = await copyStudy({ retainDates: 'full' })
  full.before.forEach((original, i) => {
    const copy = full.after[i] as Dump
    for (const key of ['studyDate', 'seriesDate', 'acquisitionDate', 'contentDate'] as const)
      assert.is(copy[key], original[key])
    assert.equal(copy.methodCodes, ['113100', '113106'])
    assert.is(copy.temporal, 'UNMODIFIED')
    assert.is(copy.patientSex, '')
    assert.is(copy.patientAge, null)
  })
  const basic = await copyStudy({})
  for (const copy of basic.after) {
    assert.is(copy.studyDate, '')
    assert.is(copy.seriesDate, '19000101') // X/D: a dummy date, valid where it is Type 1
    assert.is(copy.studyTime, '')
    assert.equal(copy.methodCodes, ['113100'])
    assert.is(copy.temporal, 'REMOVED')
  }
})

test('the same secret gives the same copy UIDs; another copy of the same study gets others', () => {
  const secret = new Uint8Array(32).fill(7)
  const uid = '1.2.3.4.5.6.7.8'
  assert.is(new Deidentifier({ secret }).uid(uid), new Deidentifier({ secret }).uid(uid))
  assert.is.not(new Deidentifier().uid(uid), new Deidentifier().uid(uid))
  assert.match(new Deidentifier().uid(uid), /^2\.25\.[1-9][0-9]{0,38}$/)
})

test.run()
