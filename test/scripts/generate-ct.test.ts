/**
 * scripts/generate-ct.ts: synthetic CT studies that DICOM tools accept (dcmdump, dciodvfy), reproducible
 * from a seed, with the geometry and numbering of a real axial series. The files are also read back by a
 * small explicit VR little endian parser here, independent of the writer the generator encodes with.
 */
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { delimiter, join, relative } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { LONG_VRS } from '../../node/dicom/dictionary.ts'
import {
  CT_IMAGE_STORAGE,
  EXPLICIT_VR_LITTLE_ENDIAN,
  type GeneratedStudy,
  generateCt
} from '../../scripts/generate-ct.ts'
import { ROOT } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const SIZE = 64
const SLICES = 3
const SERIES = 2
const SEED = 42

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

async function run(command: string, args: string[]): Promise<Run> {
  return await new Promise(resolve => {
    execFile(command, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
      resolve({ code, stdout, stderr })
    })
  })
}

async function onPath(name: string): Promise<boolean> {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (
      dir !== '' &&
      (await fs.access(join(dir, name), fs.constants.X_OK).then(
        () => true,
        () => false
      ))
    )
      return true
  }
  return false
}

// dcmtk and dicom3tools are Debian packages that `npm test` installs; without them these tests fail, never skip.
const requireTool = async (name: string, pkg: string): Promise<void> => {
  if (!(await onPath(name))) throw new Error(`${name} not found: apt-get install ${pkg} (npm test installs it)`)
}

// A minimal Part 10 reader, independent of the writer: every element of the file, in order, each checked to
// have an even length.
interface Parsed {
  elements: Map<string, { vr: string; value: Buffer }>
  order: string[]
}

function parse(bytes: Buffer, name: string): Parsed {
  assert.is(bytes.toString('latin1', 128, 132), 'DICM', `${name}: no DICM prefix`)
  const elements = new Map<string, { vr: string; value: Buffer }>()
  const order: string[] = []
  let offset = 132
  while (offset < bytes.length) {
    const tag = `${bytes.readUInt16LE(offset).toString(16).padStart(4, '0')},${bytes
      .readUInt16LE(offset + 2)
      .toString(16)
      .padStart(4, '0')}`
    const vr = bytes.toString('latin1', offset + 4, offset + 6)
    assert.match(vr, /^[A-Z]{2}$/, `${name} (${tag}): VR "${vr}"`)
    const long = LONG_VRS.has(vr)
    if (long) assert.is(bytes.readUInt16LE(offset + 6), 0, `${name} (${tag}): reserved bytes`)
    const length = long ? bytes.readUInt32LE(offset + 8) : bytes.readUInt16LE(offset + 6)
    assert.is(length % 2, 0, `${name} (${tag}) ${vr}: odd length ${length}`)
    const start = offset + (long ? 12 : 8)
    assert.ok(start + length <= bytes.length, `${name} (${tag}): runs past the end of the file`)
    elements.set(tag, { vr, value: bytes.subarray(start, start + length) })
    order.push(tag)
    offset = start + length
  }
  return { elements, order }
}

function element(parsed: Parsed, tag: string): { vr: string; value: Buffer } {
  const found = parsed.elements.get(tag)
  assert.ok(found !== undefined, `(${tag}) missing`)
  return found
}

/** The string value of an element, without its padding (NUL for UI, space for text). */
function text(parsed: Parsed, tag: string): string {
  const { vr, value } = element(parsed, tag)
  const raw = value.toString('latin1')
  if (raw.length > 0 && raw.length % 2 === 0) {
    const last = raw.at(-1)
    if (vr === 'UI') assert.ok(last !== ' ', `(${tag}) UI padded with a space`)
    else assert.ok(last !== '\0', `(${tag}) ${vr} padded with NUL`)
  }
  return vr === 'UI' ? raw.replace(/\0$/, '') : raw.replace(/ $/, '')
}

const us = (parsed: Parsed, tag: string): number => element(parsed, tag).value.readUInt16LE(0)

async function read(file: string): Promise<Parsed> {
  return parse(await fs.readFile(file), file)
}

let dir: string
let study: GeneratedStudy

test.before(async () => {
  dir = await tempDir('radmesh-ct-')
  study = await generateCt({
    out: join(dir, 'a'),
    slices: SLICES,
    series: SERIES,
    rows: SIZE,
    columns: SIZE,
    seed: SEED
  })
})

test.after(async () => {
  await fs.rm(dir, { recursive: true, force: true })
})

test('writes SERIES_n/IMAGE_nnnn.dcm, one file per slice, and reports them', async () => {
  assert.is(study.series.length, SERIES)
  assert.is(study.files.length, SERIES * SLICES)
  assert.equal(
    study.files,
    study.series.flatMap(s => s.files)
  )
  assert.equal(
    study.files.map(f => relative(join(dir, 'a'), f)),
    [
      'SERIES_1/IMAGE_0001.dcm',
      'SERIES_1/IMAGE_0002.dcm',
      'SERIES_1/IMAGE_0003.dcm',
      'SERIES_2/IMAGE_0001.dcm',
      'SERIES_2/IMAGE_0002.dcm',
      'SERIES_2/IMAGE_0003.dcm'
    ]
  )
  let bytes = 0
  for (const file of study.files) bytes += (await fs.stat(file)).size
  assert.is(study.bytes, bytes)
  assert.match(study.studyInstanceUid, /^2\.25\.[1-9]\d*$/)
})

test('every element is well formed: meta group, even lengths, padding, pixel data to the end of the file', async () => {
  for (const file of study.files) {
    const parsed = await read(file)
    const metaTags = parsed.order.filter(tag => tag.startsWith('0002,'))
    assert.equal(parsed.order.slice(0, metaTags.length), metaTags, 'file meta elements come first')
    assert.equal(metaTags, ['0002,0000', '0002,0001', '0002,0002', '0002,0003', '0002,0010', '0002,0012', '0002,0013'])
    const metaLength = metaTags.slice(1).reduce((sum, tag) => {
      const { vr, value } = element(parsed, tag)
      return sum + (LONG_VRS.has(vr) ? 12 : 8) + value.length
    }, 0)
    assert.is(element(parsed, '0002,0000').value.readUInt32LE(0), metaLength, 'group length')
    assert.equal([...element(parsed, '0002,0001').value], [0, 1])
    assert.is(text(parsed, '0002,0002'), CT_IMAGE_STORAGE)
    assert.is(text(parsed, '0008,0016'), CT_IMAGE_STORAGE)
    assert.is(text(parsed, '0002,0003'), text(parsed, '0008,0018'))
    assert.is(text(parsed, '0002,0010'), EXPLICIT_VR_LITTLE_ENDIAN)
    assert.match(text(parsed, '0002,0012'), /^2\.25\.\d+$/)
    assert.ok(text(parsed, '0002,0013').length > 0)
    for (const tag of parsed.order) {
      if (element(parsed, tag).vr === 'UI')
        assert.match(text(parsed, tag), /^(0|[1-9]\d*)(\.(0|[1-9]\d*))*$/, `(${tag}) UID`)
    }
    const dataTags = parsed.order.slice(metaTags.length)
    assert.equal(dataTags, [...dataTags].sort(), 'data set elements in ascending tag order')
    assert.is(parsed.order.at(-1), '7fe0,0010', 'pixel data is the last element')
    assert.is(element(parsed, '7fe0,0010').vr, 'OW')
    assert.is(element(parsed, '7fe0,0010').value.length, SIZE * SIZE * 2)
    assert.is(text(parsed, '0008,0060'), 'CT')
    assert.is(text(parsed, '0010,0010'), 'DOE^JANE')
    assert.is(text(parsed, '0028,0004'), 'MONOCHROME2')
    assert.equal([us(parsed, '0028,0002'), us(parsed, '0028,0010'), us(parsed, '0028,0011')], [1, SIZE, SIZE])
    assert.equal(
      [us(parsed, '0028,0100'), us(parsed, '0028,0101'), us(parsed, '0028,0102'), us(parsed, '0028,0103')],
      [16, 16, 15, 1]
    )
    assert.is(Number(text(parsed, '0028,1052')), -1024)
    assert.is(Number(text(parsed, '0028,1053')), 1)
  }
})

test('pixels look like a head and change from slice to slice', async () => {
  const pixels = await Promise.all(
    study.series[0]?.files.map(async file => {
      const data = element(await read(file), '7fe0,0010').value
      return new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length))
    }) ?? []
  )
  assert.is(pixels.length, SLICES)
  const hu = (slice: Int16Array | undefined, x: number, y: number): number => (slice?.[y * SIZE + x] ?? NaN) - 1024
  for (const slice of pixels) {
    assert.ok(hu(slice, 0, 0) <= -1000, `corner is outside the patient: ${hu(slice, 0, 0)} HU`)
    const centre = hu(slice, SIZE / 2, SIZE / 2)
    assert.ok(centre > -100 && centre < 400, `centre is soft tissue: ${centre} HU`)
  }
  assert.not.equal(pixels[0], pixels[1])
  assert.not.equal(pixels[1], pixels[2])
})

test('dcmdump reads every file without an error or a warning', async () => {
  await requireTool('dcmdump', 'dcmtk')
  for (const file of study.files) {
    const result = await run('dcmdump', [file])
    assert.is(result.code, 0, `dcmdump ${file}: ${result.stderr}`)
    assert.is(result.stderr, '', `dcmdump ${file}`)
    assert.match(result.stdout, /\(7fe0,0010\) OW/)
  }
})

test('dciodvfy finds no errors in the CT Image IOD', async () => {
  await requireTool('dciodvfy', 'dicom3tools')
  for (const file of study.files) {
    const result = await run('dciodvfy', [file])
    const output = result.stdout + result.stderr
    assert.match(output, /^CTImage$/m, `dciodvfy ${file} did not recognise a CT image: ${output}`)
    const errors = output.split('\n').filter(line => /^Error/.test(line))
    assert.equal(errors, [], `dciodvfy ${file}`)
  }
})

test('the same seed gives byte-identical files, another seed other UIDs', async () => {
  const again = await generateCt({
    out: join(dir, 'b'),
    slices: SLICES,
    series: SERIES,
    rows: SIZE,
    columns: SIZE,
    seed: SEED
  })
  assert.is(again.studyInstanceUid, study.studyInstanceUid)
  assert.is(again.files.length, study.files.length)
  for (const [i, file] of study.files.entries()) {
    const other = again.files[i] ?? ''
    assert.ok((await fs.readFile(file)).equals(await fs.readFile(other)), `${file} and ${other} differ`)
  }

  const different = await generateCt({
    out: join(dir, 'c'),
    slices: SLICES,
    series: SERIES,
    rows: SIZE,
    columns: SIZE,
    seed: SEED + 1
  })
  assert.is.not(different.studyInstanceUid, study.studyInstanceUid)
  const uids = async (s: GeneratedStudy): Promise<Set<string>> => {
    const all = new Set([s.studyInstanceUid, ...s.series.map(series => series.seriesInstanceUid)])
    for (const file of s.files) {
      const parsed = await read(file)
      for (const tag of ['0008,0018', '0020,000d', '0020,000e', '0020,0052']) all.add(text(parsed, tag))
    }
    return all
  }
  const before = await uids(study)
  const after = await uids(different)
  assert.is(after.size, before.size)
  for (const uid of after) assert.not.ok(before.has(uid), `${uid} is in both studies`)

  const unseeded = await generateCt({ out: join(dir, 'd'), slices: 1, rows: 16, columns: 16 })
  const unseededAgain = await generateCt({ out: join(dir, 'e'), slices: 1, rows: 16, columns: 16 })
  assert.is.not(unseeded.studyInstanceUid, unseededAgain.studyInstanceUid, 'without a seed, UIDs are random')
})

test('a series shares its UIDs; InstanceNumber and ImagePositionPatient z increase', async () => {
  const frames = new Set<string>()
  const seriesUids = new Set<string>()
  for (const [index, series] of study.series.entries()) {
    let lastInstance = 0
    let lastZ = -Infinity
    for (const file of series.files) {
      const parsed = await read(file)
      assert.is(text(parsed, '0020,000d'), study.studyInstanceUid)
      assert.is(text(parsed, '0020,000e'), series.seriesInstanceUid)
      assert.is(Number(text(parsed, '0020,0011')), index + 1)
      frames.add(text(parsed, '0020,0052'))
      const instance = Number(text(parsed, '0020,0013'))
      assert.ok(instance > lastInstance, `${file}: InstanceNumber ${instance} after ${lastInstance}`)
      const position = text(parsed, '0020,0032').split('\\').map(Number)
      assert.is(position.length, 3)
      const z = position[2] ?? NaN
      if (lastZ !== -Infinity)
        assert.ok(
          Math.abs(z - lastZ - Number(text(parsed, '0018,0050'))) < 1e-6,
          `${file}: z ${z} after ${lastZ} is not one SliceThickness on`
        )
      assert.ok(z > lastZ, `${file}: z ${z} after ${lastZ}`)
      assert.is(Number(text(parsed, '0020,1041')), z)
      assert.equal(text(parsed, '0020,0037').split('\\').map(Number), [1, 0, 0, 0, 1, 0])
      assert.is(text(parsed, '0028,0030').split('\\').length, 2)
      lastInstance = instance
      lastZ = z
    }
    seriesUids.add(series.seriesInstanceUid)
  }
  assert.is(seriesUids.size, SERIES, 'each series has its own UID')
  assert.is(frames.size, 1, 'the series share one frame of reference')
})

test('the CLI writes a study and prints a one-line summary', async () => {
  const out = join(dir, 'cli')
  const result = await run(process.execPath, [
    join(ROOT, 'scripts/generate-ct.ts'),
    '--out',
    out,
    '--slices',
    '2',
    '--rows',
    '16',
    '--columns',
    '16',
    '--seed',
    '5',
    '--patient-name',
    'ROE^RICHARD'
  ])
  assert.is(result.code, 0, result.stderr)
  const lines = result.stdout.trimEnd().split('\n')
  assert.is(lines.length, 1, result.stdout)
  assert.match(lines[0] ?? '', /^study 2\.25\.\d+: 2 files in 1 series, [\d.]+ MB/)
  const parsed = await read(join(out, 'SERIES_1/IMAGE_0002.dcm'))
  assert.is(text(parsed, '0010,0010'), 'ROE^RICHARD')
  assert.is(us(parsed, '0028,0010'), 16)

  const bad = await run(process.execPath, [join(ROOT, 'scripts/generate-ct.ts'), '--out', out, '--slices', 'many'])
  assert.is.not(bad.code, 0)
  assert.match(bad.stderr, /^generate-ct: --slices must be an integer/)
})

test.run()
