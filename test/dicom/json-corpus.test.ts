/**
 * The DICOM JSON model of real files: the whole pydicom test corpus converts or is refused with
 * InvalidDicomError (never another exception, never a hang), values come out as PS3.18 F.2 says, the same
 * data set in every encoding gives the same JSON, and damaged files are refused rather than half-read.
 */
import { existsSync, promises as fs } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { InvalidDicomError, type InvalidDicomReason } from '../../node/dicom/errors.ts'
import { type DicomJsonAttribute, type DicomJsonDataset, instanceToDicomJson } from '../../node/dicom/json.ts'

const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data'
const CORPUS = join(PYDICOM, 'test_files')
const CHARSETS = join(PYDICOM, 'charset_files')
const MODULE = new URL('../../node/dicom/json.ts', import.meta.url).href

/** Files of the corpus that are not Part 10 files, or are truncated: refused on purpose, and why. */
const REFUSED = new Map<string, InvalidDicomReason>([
  ['ExplVR_BigEndNoMeta.dcm', 'not-part10'], // no preamble, no File Meta Information
  ['ExplVR_LitEndNoMeta.dcm', 'not-part10'],
  ['no_meta.dcm', 'not-part10'],
  ['rtstruct.dcm', 'not-part10'],
  ['MR_truncated.dcm', 'truncated'], // Pixel Data shorter than its length
  ['rtplan_truncated.dcm', 'truncated'] // ends inside a sequence
])

const uri = (tag: string): string => `bulk:${tag}`
const read = async (dir: string, name: string): Promise<Uint8Array> =>
  new Uint8Array(await fs.readFile(join(dir, name)))
const convert = async (dir: string, name: string): Promise<DicomJsonDataset> =>
  instanceToDicomJson(await read(dir, name), uri)

function attribute(dataset: DicomJsonDataset, tag: string): DicomJsonAttribute {
  const found = dataset[tag]
  assert.ok(found, `${tag} is present`)
  return found
}

function throwsInvalid(fn: () => unknown, reason: InvalidDicomReason, what: string): void {
  try {
    fn()
  } catch (error) {
    assert.instance(error, InvalidDicomError, `${what}: ${String(error)}`)
    assert.is((error as InvalidDicomError).reason, reason, what)
    assert.is((error as InvalidDicomError).code, 'RADMESH_INVALID_DICOM')
    return
  }
  assert.unreachable(`${what}: did not throw`)
}

/** Every key is an 8-digit upper-case tag, no group 0002, no group length; items likewise. */
function checkShape(dataset: DicomJsonDataset, where: string): void {
  for (const [tag, value] of Object.entries(dataset)) {
    assert.ok(/^[0-9A-F]{8}$/.test(tag), `${where}: key ${tag}`)
    assert.ok(
      !tag.startsWith('0002') && !tag.endsWith('0000') && tag !== 'FFFCFFFC',
      `${where}: ${tag} should be left out`
    )
    assert.ok(/^[A-Z]{2}$/.test(value.vr), `${where}: ${tag} vr ${value.vr}`)
    if (value.vr === 'SQ') for (const item of value.Value ?? []) checkShape(item as DicomJsonDataset, `${where}/${tag}`)
  }
}

test('the corpus folder is there (Debian python3-pydicom)', () => {
  assert.ok(existsSync(CORPUS), `${CORPUS} is missing: apt-get install python3-pydicom`)
})

test('every corpus file converts or throws InvalidDicomError, in a worker that must finish (never hangs)', async () => {
  const names = (await fs.readdir(CORPUS)).filter(name => name.endsWith('.dcm')).sort()
  assert.ok(names.length > 50, 'the corpus has its files')
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads')
    const { readFileSync } = require('node:fs')
    import(workerData.module).then(({ instanceToDicomJson }) => {
      for (const name of workerData.names) {
        try {
          const json = instanceToDicomJson(readFileSync(workerData.dir + '/' + name), tag => 'bulk:' + tag)
          parentPort.postMessage({ name, json: JSON.stringify(json) })
        } catch (error) {
          parentPort.postMessage({ name, error: error.name, reason: error.reason, message: error.message })
        }
      }
      parentPort.postMessage({ done: true })
    })
  `,
    { eval: true, workerData: { module: MODULE, dir: CORPUS, names } }
  )
  const results = new Map<string, { json?: string; error?: string; reason?: string; message?: string }>()
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate()
      reject(new Error(`conversion hung; finished: ${[...results.keys()].join(', ')}`))
    }, 60_000)
    worker.on(
      'message',
      (message: {
        done?: boolean
        name?: string
        json?: string
        error?: string
        reason?: string
        message?: string
      }) => {
        if (message.done === true) {
          clearTimeout(timer)
          void worker.terminate().then(() => {
            resolve()
          })
        } else if (message.name !== undefined) {
          results.set(message.name, message)
        }
      }
    )
    worker.on('error', error => {
      clearTimeout(timer)
      reject(error)
    })
  })
  assert.is(results.size, names.length)
  for (const [name, result] of results) {
    const refused = REFUSED.get(name)
    if (refused !== undefined) {
      assert.is(result.error, 'InvalidDicomError', `${name} is refused`)
      assert.is(result.reason, refused, `${name}: ${result.message ?? ''}`)
    } else {
      assert.is(result.error, undefined, `${name} converts (${result.message ?? ''})`)
      checkShape(JSON.parse(result.json ?? '{}') as DicomJsonDataset, name)
    }
  }
})

test('CT_small.dcm: PN, US, DS, empty values, sequences, bulk and inline binary, no meta group', async () => {
  const json = await convert(CORPUS, 'CT_small.dcm')
  assert.equal(attribute(json, '00100010'), { vr: 'PN', Value: [{ Alphabetic: 'CompressedSamples^CT1' }] })
  assert.equal(attribute(json, '00280010'), { vr: 'US', Value: [128] })
  assert.equal(attribute(json, '00280011'), { vr: 'US', Value: [128] })
  assert.equal(attribute(json, '7FE00010'), { vr: 'OW', BulkDataURI: 'bulk:7FE00010' })
  assert.equal(attribute(json, '00180050'), { vr: 'DS', Value: [5] }) // SliceThickness "5.000000"
  assert.equal(attribute(json, '00200032'), { vr: 'DS', Value: [-158.135803, -179.035797, -75.699997] })
  assert.equal(attribute(json, '00200013'), { vr: 'IS', Value: [1] })
  assert.equal(attribute(json, '00280120'), { vr: 'SS', Value: [-2000] })
  assert.equal(attribute(json, '00080016'), { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] })
  assert.equal(attribute(json, '00080008'), { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] })
  assert.equal(attribute(json, '00080050'), { vr: 'SH' }) // empty: no Value
  assert.equal(attribute(json, '00080090'), { vr: 'PN' })
  assert.equal(attribute(json, '00101002'), {
    vr: 'SQ',
    Value: [
      { '00100020': { vr: 'LO', Value: ['ABCD1234'] }, '00100022': { vr: 'CS', Value: ['TEXT'] } },
      { '00100020': { vr: 'LO', Value: ['1234ABCD'] }, '00100022': { vr: 'CS', Value: ['TEXT'] } }
    ]
  })
  const small = attribute(json, '00431028') // private OB of 80 bytes: inline
  assert.is(small.vr, 'OB')
  assert.is(Buffer.from(small.InlineBinary ?? '', 'base64').length, 80)
  assert.equal(attribute(json, '00431029'), { vr: 'OB', BulkDataURI: 'bulk:00431029' }) // 2068 bytes
  assert.ok(
    Object.keys(json).every(tag => !tag.startsWith('0002')),
    'no File Meta Information'
  )
  assert.is(json['FFFCFFFC'], undefined, 'no trailing padding')
  assert.ok(Object.keys(json).length > 200)
})

test('the same data set in explicit/implicit little endian, big endian and deflated gives the same JSON', async () => {
  const reference = await convert(CORPUS, 'MR_small.dcm')
  for (const name of ['MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'MR_small_expb.dcm', 'MR_small_padded.dcm']) {
    assert.equal(await convert(CORPUS, name), reference, name)
  }
  assert.equal(await convert(CORPUS, 'rtdose_expb.dcm'), await convert(CORPUS, 'rtdose.dcm'))
  const deflated = await convert(CORPUS, 'image_dfl.dcm')
  assert.equal(attribute(deflated, '00280010'), { vr: 'US', Value: [512] })
  assert.is(attribute(deflated, '7FE00010').BulkDataURI, 'bulk:7FE00010')
})

test('encapsulated pixel data is OB bulk data; AT values are hex strings', async () => {
  const json = await convert(CORPUS, 'JPEG2000.dcm')
  assert.equal(attribute(json, '7FE00010'), { vr: 'OB', BulkDataURI: 'bulk:7FE00010' })
  assert.equal(attribute(json, '00280009'), { vr: 'AT', Value: ['00540010', '00540020'] })
  assert.equal(attribute(await convert(CORPUS, 'MR_small_RLE.dcm'), '7FE00010'), {
    vr: 'OB',
    BulkDataURI: 'bulk:7FE00010'
  })
})

test('private sequences: UN of undefined length and nested implicit VR sequences', async () => {
  const un = await convert(CORPUS, 'UN_sequence.dcm')
  const outer = attribute(un, '4453100C')
  assert.is(outer.vr, 'SQ')
  const item = outer.Value?.[0] as DicomJsonDataset
  assert.equal(attribute(item, '0020000D'), {
    vr: 'UI',
    Value: ['1.2.840.113619.2.327.3.185221411.476.1398588725.795']
  })
  const series = attribute(item, '00081115').Value?.[0] as DicomJsonDataset
  const referenced = attribute(series, '00081199').Value?.[0] as DicomJsonDataset
  assert.equal(attribute(referenced, '00081150'), { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] })

  const nested = await convert(CORPUS, 'nested_priv_SQ.dcm')
  const level1 = attribute(nested, '00010001').Value?.[0] as DicomJsonDataset
  const level2 = attribute(level1, '00010001').Value?.[0] as DicomJsonDataset
  assert.equal(attribute(level2, '00010001'), {
    vr: 'UN',
    InlineBinary: Buffer.from('Double Nested SQ').toString('base64')
  })
  // Pixel Data is bulk at any size.
  assert.equal(attribute(nested, '7FE00010'), { vr: 'OW', BulkDataURI: 'bulk:7FE00010' })
})

test('a data set encoded otherwise than its transfer syntax says, or with none, is read as it is encoded', async () => {
  for (const name of ['SC_rgb_jpeg.dcm', 'rtdose_rle.dcm', 'meta_missing_tsyntax.dcm']) {
    const json = await convert(CORPUS, name)
    checkShape(json, name)
  }
  assert.equal(attribute(await convert(CORPUS, 'rtdose_rle.dcm'), '00100010'), {
    vr: 'PN',
    Value: [{ Alphabetic: 'Lastname^Firstname' }]
  })
})

test('bulk data inside a sequence is named by its path: sequence tag / item index / tag', async () => {
  const json = await convert(CORPUS, 'waveform_ecg.dcm')
  const waveforms = attribute(json, '54000100').Value as DicomJsonDataset[]
  assert.is(waveforms.length, 2)
  assert.equal(
    waveforms.map(w => w['54001010']),
    [
      { vr: 'OW', BulkDataURI: 'bulk:54000100/0/54001010' },
      { vr: 'OW', BulkDataURI: 'bulk:54000100/1/54001010' }
    ]
  )
})

test('an IS that is not a number stays a string; empty items of multi-valued attributes are null', async () => {
  assert.equal(attribute(await convert(CORPUS, 'badVR.dcm'), '00280008'), { vr: 'IS', Value: ['1A'] })
  assert.equal(attribute(await convert(CHARSETS, 'chrH31.dcm'), '00080005'), {
    vr: 'CS',
    Value: [null, 'ISO 2022 IR 87']
  })
})

test('not Part 10, truncated, or inconsistent files throw InvalidDicomError with a clear message', async () => {
  const ct = await read(CORPUS, 'CT_small.dcm')
  throwsInvalid(() => instanceToDicomJson(new Uint8Array(0), uri), 'not-part10', 'empty')
  throwsInvalid(() => instanceToDicomJson(new TextEncoder().encode('hello, not DICOM'), uri), 'not-part10', 'text')
  throwsInvalid(() => instanceToDicomJson(ct.subarray(0, 131), uri), 'not-part10', 'cut inside the preamble')
  throwsInvalid(() => instanceToDicomJson(ct.subarray(0, 200), uri), 'truncated', 'cut inside the meta header')
  throwsInvalid(() => instanceToDicomJson(ct.subarray(0, ct.length - 1000), uri), 'truncated', 'cut inside pixel data')
  const noMeta = await read(CORPUS, 'no_meta.dcm')
  throwsInvalid(() => instanceToDicomJson(noMeta, uri), 'not-part10', 'no meta')
})

test('damaged copies of corpus files: converted or InvalidDicomError, nothing else', async () => {
  const names = [
    'CT_small.dcm',
    'MR_small_implicit.dcm',
    'MR_small_bigendian.dcm',
    'JPEG2000.dcm',
    'image_dfl.dcm',
    'UN_sequence.dcm',
    'rtplan.dcm',
    'chrH32.dcm'
  ]
  const files = await Promise.all(
    names.map(async name => (name.startsWith('chr') ? await read(CHARSETS, name) : await read(CORPUS, name)))
  )
  let seed = 20240601
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return Math.floor((seed / 2 ** 32) * n)
  }
  let converted = 0
  for (let round = 0; round < 3000; round++) {
    const original = files[random(files.length)] as Uint8Array
    const copy = Uint8Array.from(original)
    const kind = random(3)
    let input: Uint8Array = copy
    if (kind === 0) input = copy.subarray(0, random(copy.length))
    else
      for (let k = 0; k <= random(8); k++)
        copy[132 + random(Math.min(copy.length - 132, 3000))] = kind === 1 ? random(256) : 0xff
    try {
      instanceToDicomJson(input, uri)
      converted++
    } catch (error) {
      if (!(error instanceof InvalidDicomError)) assert.unreachable(`round ${round}: ${String(error)}`)
    }
  }
  assert.ok(converted > 100, 'many damaged copies still convert (value bytes changed)')
})

test.run()
