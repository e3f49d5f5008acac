/**
 * Synthetic CT studies as DICOM Part 10 files, for tests and benchmarks.
 *
 *   node scripts/generate-ct.ts --out DIR --slices 400 [--series 2] [--rows 512] [--columns 512]
 *                               [--patient-name NAME] [--patient-id ID] [--seed N]
 *
 * Writes DIR/SERIES_<s>/IMAGE_<nnnn>.dcm (s and nnnn count from 1, like SeriesNumber and InstanceNumber)
 * and prints one line: study UID, number of files, size in MB. Also importable: `generateCt(options)`.
 *
 * Each file is a CT Image Storage object (1.2.840.10008.5.1.4.1.1.2) in explicit VR little endian,
 * 16-bit signed pixels with RescaleIntercept -1024, encoded by radmesh's DICOM writer (node/dicom/writer.ts).
 * The image is a head phantom (generate-ct/phantom.ts): skull, brain with ventricles, and a bright blob that
 * moves and changes size from slice to slice. Series after the first are other reconstructions of the same
 * acquisition (bone kernel, and so on) sharing the Frame of Reference. UIDs are under the 2.25 root: derived
 * from `seed` (the same seed gives byte-identical files), random without one.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { endianness } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { CHARSET_VRS } from '../node/dicom/charsets.ts'
import { MAX_VALUE_LENGTH, PIXEL_DATA, TRANSFER_SYNTAX, tagName } from '../node/dicom/dictionary.ts'
import { isStrictUid } from '../node/dicom/uids.ts'
import { type Element, elementHeader, part10Header, writeDataset } from '../node/dicom/writer.ts'
import { makePhantom, RESCALE_INTERCEPT, renderSlice } from './generate-ct/phantom.ts'

export interface CtOptions {
  out: string
  /** slices per series */
  slices: number
  /** number of series, default 1 */
  series?: number
  rows?: number
  columns?: number
  patientName?: string
  patientId?: string
  studyInstanceUid?: string
  seed?: number
  modality?: string
  bodyPart?: string
  studyDescription?: string
  /** the study's date and time (default: from the seed, or now) */
  studyDate?: Date
  /** Issuer of Patient ID (0010,0021), when the patient id is qualified by one */
  issuerOfPatientId?: string
  /** the RIS's order numbers (0040,2016) and (0040,2017), as a modality copies them from the worklist */
  placerOrderNumber?: string
  fillerOrderNumber?: string
}

export interface GeneratedStudy {
  studyInstanceUid: string
  series: Array<{ seriesInstanceUid: string; files: string[] }>
  files: string[]
  bytes: number
}

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
export const EXPLICIT_VR_LITTLE_ENDIAN = TRANSFER_SYNTAX.explicitLittle
/** uid('radmesh generate-ct implementation class'), fixed. */
const IMPLEMENTATION_CLASS_UID = '2.25.252962609993041252627601836523818710966'
const IMPLEMENTATION_VERSION_NAME = 'RADMESH_GENCT_1'
const FIELD_OF_VIEW_MM = 250
/** Files written at once: each is built synchronously, then written while the next is built. */
const CONCURRENCY = 4

/** How the series of a study differ: later series are other reconstructions of the same acquisition. */
const RECONSTRUCTIONS = [
  {
    description: 'AXIAL SOFT TISSUE',
    kernel: 'H30s',
    windowCenter: 40,
    windowWidth: 80,
    explanation: 'BRAIN',
    noise: 6
  },
  { description: 'AXIAL BONE', kernel: 'H70h', windowCenter: 600, windowWidth: 2800, explanation: 'BONE', noise: 28 },
  {
    description: 'AXIAL SUBDURAL',
    kernel: 'H40s',
    windowCenter: 75,
    windowWidth: 215,
    explanation: 'SUBDURAL',
    noise: 10
  }
] as const

// ---------------------------------------------------------------------------------------------------
// Values

/**
 * A text element, its values checked against what their VR holds: the names, IDs and descriptions given as
 * options end up in some. In UTF-8 (`utf8`) where the VR takes the Specific Character Set, as the writer does.
 */
function textElement(tag: number, vr: string, value: string | string[], utf8: boolean): Element {
  const encoding: BufferEncoding = utf8 && CHARSET_VRS.has(vr) ? 'utf8' : 'latin1'
  const max = MAX_VALUE_LENGTH[vr]
  for (const v of Array.isArray(value) ? value : [value]) {
    if (max !== undefined && Buffer.byteLength(v, encoding) > max) {
      throw new Error(`${tagName(tag)} ${vr} value "${v}" is longer than ${max} bytes`)
    }
    if (v.includes('\\')) throw new Error(`${tagName(tag)} value "${v}" contains a backslash`)
  }
  return { tag, vr, value }
}

/** A decimal string (DS) of at most 16 characters. */
function ds(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`DS value ${n} is not finite`)
  let text = String(Object.is(n, -0) ? 0 : n)
  for (let precision = 15; text.length > 16; precision--) text = String(Number(n.toPrecision(precision)))
  return text
}

// ---------------------------------------------------------------------------------------------------
// Deterministic UIDs, dates and noise

/** A 2.25 UID from a UUID (RFC 9562 version 8, custom) made of the SHA-256 of `key`. */
function uid(key: string): string {
  const bytes = createHash('sha256').update(key).digest().subarray(0, 16)
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80
  return `2.25.${BigInt('0x' + bytes.toString('hex')).toString()}`
}

/** A 32-bit unsigned integer from `key`, never 0 (it seeds xorshift). */
function hash32(key: string): number {
  return createHash('sha256').update(key).digest().readUInt32LE(0) || 0x9e3779b9
}

const da = (d: Date): string =>
  `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`
const tm = (d: Date): string =>
  `${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}` +
  `${String(d.getUTCSeconds()).padStart(2, '0')}`

// ---------------------------------------------------------------------------------------------------
// The study

export async function generateCt(options: CtOptions): Promise<GeneratedStudy> {
  const slices = options.slices
  const seriesCount = options.series ?? 1
  const rows = options.rows ?? 512
  const columns = options.columns ?? 512
  for (const [name, value, max] of [
    ['slices', slices, 99_999],
    ['series', seriesCount, 999],
    ['rows', rows, 65_535],
    ['columns', columns, 65_535]
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > max)
      throw new Error(`${name} must be an integer from 1 to ${max}, not ${value}`)
  }
  if (rows * columns * 2 > 0xfffffffe) throw new Error(`${rows}x${columns} pixels do not fit in one DICOM element`)
  if (options.seed !== undefined && !Number.isFinite(options.seed))
    throw new Error(`seed must be a number, not ${options.seed}`)

  const key = options.seed === undefined ? randomBytes(16).toString('hex') : `seed:${options.seed}`
  const derive = (what: string): string => `radmesh generate-ct ${key} ${what}`
  const studyInstanceUid = options.studyInstanceUid ?? uid(derive('study'))
  if (!isStrictUid(studyInstanceUid)) throw new Error(`studyInstanceUid "${studyInstanceUid}" is not a valid UID`)
  const frameOfReferenceUid = uid(derive('frame of reference'))
  const modality = options.modality ?? 'CT'
  const bodyPart = options.bodyPart ?? 'HEAD'
  const patientName = options.patientName ?? 'DOE^JANE'
  const patientId = options.patientId ?? `RM${String(hash32(derive('patient id')) % 100_000_000).padStart(8, '0')}`
  const studyDescription = options.studyDescription ?? `${bodyPart} WO CONTRAST`
  const accessionNumber = `A${String(hash32(derive('accession')) % 10_000_000).padStart(7, '0')}`
  // Dates: from the seed (so files are reproducible), the current time without one.
  const studyTime =
    options.studyDate !== undefined
      ? new Date(Math.floor(options.studyDate.getTime() / 1000) * 1000)
      : options.seed === undefined
        ? new Date(Math.floor(Date.now() / 1000) * 1000)
        : new Date(Date.UTC(2024, 0, 1) + (hash32(derive('date')) % (365 * 86_400)) * 1000)
  const birthHash = hash32(derive('birth date'))
  const birthYear = studyTime.getUTCFullYear() - 20 - (birthHash % 60)
  const birthDate =
    `${birthYear}${String(1 + ((birthHash >>> 8) % 12)).padStart(2, '0')}` +
    `${String(1 + ((birthHash >>> 16) % 28)).padStart(2, '0')}`
  const hadBirthday = birthDate.slice(4) <= da(studyTime).slice(4)
  const age = `${String(studyTime.getUTCFullYear() - birthYear - (hadBirthday ? 0 : 1)).padStart(3, '0')}Y`
  const utf8 = /[^\x20-\x7e]/.test(patientName + patientId + studyDescription)

  // Geometry: square pixels across a 250 mm field of view; slices 0.5 to 5 mm apart, thickness = spacing.
  const spacing = Number(ds(FIELD_OF_VIEW_MM / Math.max(rows, columns)))
  const thicknessMicrons = Math.round(Math.min(5, Math.max(0.5, 200 / slices)) * 1000)
  const thickness = thicknessMicrons / 1000
  const x0 = Number(ds((-spacing * (columns - 1)) / 2))
  const y0 = Number(ds((-spacing * (rows - 1)) / 2))
  const z0Microns = -Math.round(((slices - 1) * thicknessMicrons) / 2)
  const phantom = makePhantom(rows, columns, spacing)
  const pixelBytes = rows * columns * 2
  const littleEndian = endianness() === 'LE'

  const out = resolve(options.out)
  const study: GeneratedStudy = { studyInstanceUid, series: [], files: [], bytes: 0 }
  const jobs: Array<() => Promise<void>> = []
  for (let seriesIndex = 0; seriesIndex < seriesCount; seriesIndex++) {
    const recon = RECONSTRUCTIONS[seriesIndex % RECONSTRUCTIONS.length] ?? RECONSTRUCTIONS[0]
    const seriesInstanceUid = uid(derive(`series ${seriesIndex}`))
    const seriesNumber = seriesIndex + 1
    const dir = join(out, `SERIES_${seriesNumber}`)
    await fs.mkdir(dir, { recursive: true })
    const files: string[] = []
    study.series.push({ seriesInstanceUid, files })
    const seriesTime = new Date(studyTime.getTime() + 60_000 + seriesIndex * 30_000)
    const digits = Math.max(4, String(slices).length)
    for (let slice = 0; slice < slices; slice++) {
      const instanceNumber = slice + 1
      const file = join(dir, `IMAGE_${String(instanceNumber).padStart(digits, '0')}.dcm`)
      files.push(file)
      study.files.push(file)
      const sopInstanceUid = uid(derive(`instance ${seriesIndex} ${slice}`))
      const z = (z0Microns + slice * thicknessMicrons) / 1000
      const contentTime = new Date(seriesTime.getTime() + Math.floor(slice / 10) * 1000)
      const acquisitionTime = new Date(studyTime.getTime() + 30_000 + Math.floor(slice / 20) * 1000)

      const t = slices === 1 ? 0.5 : slice / (slices - 1)
      const noiseState = hash32(derive(`noise ${seriesIndex} ${slice}`))
      // Built when its turn comes, so only the files being written are in memory.
      jobs.push(async () => {
        const text = (tag: number, vr: string, value: string | string[]): Element => textElement(tag, vr, value, utf8)
        const us = (tag: number, value: number): Element => ({ tag, vr: 'US', value })
        const dataset: Element[] = [
          ...(utf8 ? [text(0x00080005, 'CS', 'ISO_IR 192')] : []),
          text(0x00080008, 'CS', ['ORIGINAL', 'PRIMARY', 'AXIAL']),
          text(0x00080012, 'DA', da(contentTime)),
          text(0x00080013, 'TM', tm(contentTime)),
          text(0x00080016, 'UI', CT_IMAGE_STORAGE),
          text(0x00080018, 'UI', sopInstanceUid),
          text(0x00080020, 'DA', da(studyTime)),
          text(0x00080021, 'DA', da(seriesTime)),
          text(0x00080022, 'DA', da(acquisitionTime)),
          text(0x00080023, 'DA', da(contentTime)),
          text(0x00080030, 'TM', tm(studyTime)),
          text(0x00080031, 'TM', tm(seriesTime)),
          text(0x00080032, 'TM', tm(acquisitionTime)),
          text(0x00080033, 'TM', tm(contentTime)),
          text(0x00080050, 'SH', accessionNumber),
          text(0x00080060, 'CS', modality),
          text(0x00080070, 'LO', 'RADMESH'),
          text(0x00080080, 'LO', 'RADMESH SYNTHETIC HOSPITAL'),
          text(0x00080090, 'PN', ''),
          text(0x00081030, 'LO', studyDescription),
          text(0x0008103e, 'LO', recon.description),
          text(0x00081090, 'LO', 'SYNTHETIC CT'),
          text(0x00100010, 'PN', patientName),
          text(0x00100020, 'LO', patientId),
          ...(options.issuerOfPatientId === undefined ? [] : [text(0x00100021, 'LO', options.issuerOfPatientId)]),
          text(0x00100030, 'DA', birthDate),
          text(0x00100040, 'CS', 'O'),
          text(0x00101010, 'AS', age),
          text(0x00180015, 'CS', bodyPart),
          text(0x00180050, 'DS', ds(thickness)),
          text(0x00180060, 'DS', '120'),
          text(0x00181020, 'LO', 'radmesh generate-ct 1'),
          text(0x00181100, 'DS', ds(spacing * Math.max(rows, columns))),
          text(0x00181120, 'DS', '0'),
          text(0x00181130, 'DS', '150'),
          text(0x00181140, 'CS', 'CW'),
          text(0x00181150, 'IS', '1000'),
          text(0x00181151, 'IS', '300'),
          text(0x00181152, 'IS', '300'),
          text(0x00181210, 'SH', recon.kernel),
          text(0x00185100, 'CS', 'HFS'),
          text(0x0020000d, 'UI', studyInstanceUid),
          text(0x0020000e, 'UI', seriesInstanceUid),
          text(0x00200010, 'SH', '1'),
          text(0x00200011, 'IS', String(seriesNumber)),
          text(0x00200012, 'IS', '1'),
          text(0x00200013, 'IS', String(instanceNumber)),
          text(0x00200032, 'DS', [ds(x0), ds(y0), ds(z)]),
          text(0x00200037, 'DS', ['1', '0', '0', '0', '1', '0']),
          text(0x00200052, 'UI', frameOfReferenceUid),
          text(0x00201040, 'LO', ''),
          text(0x00201041, 'DS', ds(z)),
          us(0x00280002, 1),
          text(0x00280004, 'CS', 'MONOCHROME2'),
          us(0x00280010, rows),
          us(0x00280011, columns),
          text(0x00280030, 'DS', [ds(spacing), ds(spacing)]),
          us(0x00280100, 16),
          us(0x00280101, 16),
          us(0x00280102, 15),
          us(0x00280103, 1),
          text(0x00281050, 'DS', ds(recon.windowCenter)),
          text(0x00281051, 'DS', ds(recon.windowWidth)),
          text(0x00281052, 'DS', ds(RESCALE_INTERCEPT)),
          text(0x00281053, 'DS', '1'),
          text(0x00281054, 'LO', 'HU'),
          text(0x00281055, 'LO', recon.explanation),
          ...(options.placerOrderNumber === undefined ? [] : [text(0x00402016, 'LO', options.placerOrderNumber)]),
          ...(options.fillerOrderNumber === undefined ? [] : [text(0x00402017, 'LO', options.fillerOrderNumber)])
        ]
        const head = Buffer.concat([
          part10Header({
            sopClassUid: CT_IMAGE_STORAGE,
            sopInstanceUid,
            transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN,
            implementationClassUid: IMPLEMENTATION_CLASS_UID,
            implementationVersionName: IMPLEMENTATION_VERSION_NAME
          }),
          writeDataset(dataset, utf8),
          elementHeader(PIXEL_DATA, 'OW', pixelBytes)
        ])
        const pixelOffset = head.byteLength
        const total = pixelOffset + pixelBytes
        // One zeroed buffer per file (its ArrayBuffer starts at offset 0, so the pixel view is aligned).
        const buffer = Buffer.from(new ArrayBuffer(total))
        buffer.set(head)
        renderSlice(phantom, new Int16Array(buffer.buffer, pixelOffset, rows * columns), t, recon.noise, noiseState)
        if (!littleEndian) buffer.subarray(pixelOffset).swap16()
        await fs.writeFile(file, buffer)
        study.bytes += total
      })
    }
  }

  let next = 0
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]
      if (job !== undefined) await job()
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, worker))
  return study
}

// ---------------------------------------------------------------------------------------------------
// CLI

if (import.meta.main) {
  const usage =
    'usage: node scripts/generate-ct.ts --out DIR --slices N [--series N] [--rows N] [--columns N] ' +
    '[--patient-name NAME] [--patient-id ID] [--seed N]'
  try {
    const { values } = parseArgs({
      options: {
        out: { type: 'string' },
        slices: { type: 'string' },
        series: { type: 'string' },
        rows: { type: 'string' },
        columns: { type: 'string' },
        'patient-name': { type: 'string' },
        'patient-id': { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    if (values.help === true) {
      process.stdout.write(`${usage}\n`)
      process.exit(0)
    }
    const int = (name: string, value: string | undefined): number | undefined => {
      if (value === undefined) return undefined
      if (!/^-?\d+$/.test(value)) throw new Error(`--${name} must be an integer, not "${value}"`)
      return Number(value)
    }
    if (values.out === undefined || values.slices === undefined)
      throw new Error(`--out and --slices are required\n${usage}`)
    const started = performance.now()
    const study = await generateCt({
      out: values.out,
      slices: int('slices', values.slices) ?? 0,
      series: int('series', values.series),
      rows: int('rows', values.rows),
      columns: int('columns', values.columns),
      patientName: values['patient-name'],
      patientId: values['patient-id'],
      seed: int('seed', values.seed)
    })
    const seconds = (performance.now() - started) / 1000
    process.stdout.write(
      `study ${study.studyInstanceUid}: ${study.files.length} files in ${study.series.length} series, ` +
        `${(study.bytes / 1e6).toFixed(1)} MB in ${resolve(values.out)} (${seconds.toFixed(1)} s)\n`
    )
  } catch (error) {
    process.stderr.write(`generate-ct: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
}
