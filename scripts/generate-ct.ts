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
 * 16-bit signed pixels with RescaleIntercept -1024, encoded here with Buffer (no DICOM library). The
 * image is a head phantom: skull, brain with ventricles, and a bright blob that moves and changes size
 * from slice to slice. Series after the first are other reconstructions of the same acquisition (bone
 * kernel, and so on) sharing the Frame of Reference. UIDs are under the 2.25 root: derived from `seed`
 * (the same seed gives byte-identical files), random without one.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { endianness } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

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
}

export interface GeneratedStudy {
  studyInstanceUid: string
  series: Array<{ seriesInstanceUid: string, files: string[] }>
  files: string[]
  bytes: number
}

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1'
/** uid('radmesh generate-ct implementation class'), fixed. */
const IMPLEMENTATION_CLASS_UID = '2.25.252962609993041252627601836523818710966'
const IMPLEMENTATION_VERSION_NAME = 'RADMESH_GENCT_1'
const RESCALE_INTERCEPT = -1024
const FIELD_OF_VIEW_MM = 250
/** Files written at once: each is built synchronously, then written while the next is built. */
const CONCURRENCY = 4

/** How the series of a study differ: later series are other reconstructions of the same acquisition. */
const RECONSTRUCTIONS = [
  { description: 'AXIAL SOFT TISSUE', kernel: 'H30s', windowCenter: 40, windowWidth: 80, explanation: 'BRAIN', noise: 6 },
  { description: 'AXIAL BONE', kernel: 'H70h', windowCenter: 600, windowWidth: 2800, explanation: 'BONE', noise: 28 },
  { description: 'AXIAL SUBDURAL', kernel: 'H40s', windowCenter: 75, windowWidth: 215, explanation: 'SUBDURAL', noise: 10 }
] as const

// ---------------------------------------------------------------------------------------------------
// Explicit VR little endian encoding

/** VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
/** Maximum value lengths (in bytes per value) of the string VRs used here (PS3.5 6.2). */
const MAX_LENGTH: Record<string, number> = { AE: 16, AS: 4, CS: 16, DA: 8, DS: 16, IS: 12, LO: 64, PN: 64, SH: 16, TM: 16, UI: 64 }

interface Element { tag: number, vr: string, value: Buffer }

function stringElement (tag: number, vr: string, value: string | Array<string | number>, encoding: BufferEncoding = 'latin1'): Element {
  const values = Array.isArray(value) ? value.map(String) : [value]
  const max = MAX_LENGTH[vr]
  for (const v of values) {
    if (max !== undefined && Buffer.byteLength(v, encoding) > max) throw new Error(`${tagName(tag)} ${vr} value "${v}" is longer than ${max} bytes`)
    if (v.includes('\\')) throw new Error(`${tagName(tag)} value "${v}" contains a backslash`)
  }
  let bytes = Buffer.from(values.join('\\'), encoding)
  if (bytes.length % 2 === 1) bytes = Buffer.concat([bytes, Buffer.from([vr === 'UI' ? 0x00 : 0x20])])
  return { tag, vr, value: bytes }
}

function usElement (tag: number, value: number): Element {
  const bytes = Buffer.alloc(2)
  bytes.writeUInt16LE(value)
  return { tag, vr: 'US', value: bytes }
}

function ulElement (tag: number, value: number): Element {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32LE(value)
  return { tag, vr: 'UL', value: bytes }
}

const tagName = (tag: number): string => `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`

function headerLength (vr: string): number {
  return LONG_VRS.has(vr) ? 12 : 8
}

/** Writes the tag, VR and length of an element at `offset`; returns the offset of its value. */
function writeHeader (buffer: Buffer, offset: number, tag: number, vr: string, length: number): number {
  buffer.writeUInt16LE(tag >>> 16, offset)
  buffer.writeUInt16LE(tag & 0xffff, offset + 2)
  buffer.write(vr, offset + 4, 'latin1')
  if (LONG_VRS.has(vr)) {
    buffer.writeUInt16LE(0, offset + 6)
    buffer.writeUInt32LE(length, offset + 8)
    return offset + 12
  }
  if (length > 0xffff) throw new Error(`${tagName(tag)} ${vr} value of ${length} bytes does not fit a 16-bit length`)
  buffer.writeUInt16LE(length, offset + 6)
  return offset + 8
}

const encodedLength = (elements: Element[]): number => elements.reduce((sum, e) => sum + headerLength(e.vr) + e.value.length, 0)

function writeElements (buffer: Buffer, offset: number, elements: Element[]): number {
  let previous = -1
  for (const e of elements) {
    if (e.tag <= previous) throw new Error(`${tagName(e.tag)} is out of order`)
    previous = e.tag
    offset = writeHeader(buffer, offset, e.tag, e.vr, e.value.length)
    offset += e.value.copy(buffer, offset)
  }
  return offset
}

/** A decimal string (DS) of at most 16 characters. */
function ds (n: number): string {
  if (!Number.isFinite(n)) throw new Error(`DS value ${n} is not finite`)
  let text = String(Object.is(n, -0) ? 0 : n)
  for (let precision = 15; text.length > 16; precision--) text = String(Number(n.toPrecision(precision)))
  return text
}

// ---------------------------------------------------------------------------------------------------
// Deterministic UIDs, dates and noise

/** A 2.25 UID from a UUID (RFC 9562 version 8, custom) made of the SHA-256 of `key`. */
function uid (key: string): string {
  const bytes = createHash('sha256').update(key).digest().subarray(0, 16)
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80
  return `2.25.${BigInt('0x' + bytes.toString('hex')).toString()}`
}

/** A 32-bit unsigned integer from `key`, never 0 (it seeds xorshift). */
function hash32 (key: string): number {
  return createHash('sha256').update(key).digest().readUInt32LE(0) || 0x9e3779b9
}

const da = (d: Date): string => `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`
const tm = (d: Date): string => `${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}${String(d.getUTCSeconds()).padStart(2, '0')}`

// ---------------------------------------------------------------------------------------------------
// Pixels: a head phantom, in stored values (HU - RescaleIntercept)

interface Phantom {
  rows: number
  columns: number
  /** mm per pixel, both directions */
  spacing: number
  /** Brain texture: a product of a row term and a column term, precomputed. */
  rowTexture: Int16Array
  columnTexture: Int16Array
}

function makePhantom (rows: number, columns: number, spacing: number): Phantom {
  const rowTexture = new Int16Array(rows)
  const columnTexture = new Int16Array(columns)
  for (let y = 0; y < rows; y++) rowTexture[y] = Math.round(3 * Math.sin(y * spacing / 9) + 2 * Math.sin(y * spacing / 3.7))
  for (let x = 0; x < columns; x++) columnTexture[x] = Math.round(2 * Math.cos(x * spacing / 7.3) + 2 * Math.sin(x * spacing / 4.1))
  return { rows, columns, spacing, rowTexture, columnTexture }
}

/** Columns [from, to) of row `y` inside the ellipse centred (cx, cy) with semi-axes (a, b), all in pixels. */
function span (y: number, cx: number, cy: number, a: number, b: number, columns: number): [number, number] {
  if (a <= 0 || b <= 0) return [0, 0]
  const dy = (y - cy) / b
  if (dy * dy >= 1) return [0, 0]
  const half = a * Math.sqrt(1 - dy * dy)
  return [Math.max(0, Math.ceil(cx - half)), Math.min(columns, Math.floor(cx + half) + 1)]
}

/**
 * Fills `pixels` with slice `t` (0 = lowest, 1 = top of the scan range) of the phantom.
 * `noise` is the standard deviation-ish amplitude in HU, `state` the xorshift32 seed.
 */
function renderSlice (phantom: Phantom, pixels: Int16Array, t: number, noise: number, state: number): void {
  const { rows, columns, spacing, rowTexture, columnTexture } = phantom
  const mm = (v: number): number => v / spacing
  const hu = (v: number): number => v - RESCALE_INTERCEPT
  const cx = (columns - 1) / 2
  const cy = (rows - 1) / 2
  // Head: an ellipsoid, from the skull base (t = 0) to near the vertex (t = 1).
  const zz = -0.75 + 1.65 * t
  const scale = Math.sqrt(Math.max(0, 1 - zz * zz))
  const headA = mm(72 * scale)
  const headB = mm(92 * scale)
  const skull = mm(6.5)
  const headCy = cy + mm(4)
  // Ventricles: two ellipses either side of the midline, in the middle of the head.
  const ventricleSize = Math.max(0, 1 - ((zz - 0.15) / 0.35) ** 2)
  const ventricleA = mm(6) * ventricleSize
  const ventricleB = mm(22) * ventricleSize
  // Blob: moves on a helix and swells and shrinks through the scan.
  const blobAngle = 2 * Math.PI * 1.5 * t
  const blobX = cx + mm(28) * Math.cos(blobAngle) * scale
  const blobY = headCy + mm(36) * Math.sin(blobAngle) * scale
  const blobR = mm(4 + 10 * Math.sin(Math.PI * t)) * scale
  const fovRadius = Math.min(rows, columns) / 2

  const outside = hu(-2000)
  const air = hu(-1000)
  const bone = hu(1100)
  const brain = hu(34)
  const csf = hu(6)
  const blob = hu(220 + Math.round(60 * Math.cos(3 * Math.PI * t)))
  // Triangular noise from two bytes of xorshift32: ((b0 + b1 - 255) * k) >> 8 spans about ±noise HU.
  const k = Math.max(0, Math.round(noise * 2))
  let s = state >>> 0 || 1

  for (let y = 0; y < rows; y++) {
    const row = pixels.subarray(y * columns, (y + 1) * columns)
    row.fill(outside)
    const [fovL, fovR] = span(y, cx, cy, fovRadius, fovRadius, columns)
    row.fill(air, fovL, fovR)
    const [outL, outR] = span(y, cx, headCy, headA, headB, columns)
    row.fill(bone, outL, outR)
    const [inL, inR] = span(y, cx, headCy, headA - skull, headB - skull, columns)
    const rt = rowTexture[y] ?? 0
    for (let x = inL; x < inR; x++) row[x] = brain + rt * (columnTexture[x] ?? 0)
    if (ventricleSize > 0 && inR > inL) {
      const [lL, lR] = span(y, cx - mm(8), headCy - mm(4), ventricleA, ventricleB, columns)
      row.fill(csf, lL, lR)
      const [rL, rR] = span(y, cx + mm(8), headCy - mm(4), ventricleA, ventricleB, columns)
      row.fill(csf, rL, rR)
    }
    if (inR > inL) {
      const [bL, bR] = span(y, blobX, blobY, blobR, blobR, columns)
      row.fill(blob, Math.max(bL, inL), Math.min(bR, inR))
    }
    if (k > 0) {
      for (let x = fovL; x < fovR; x++) {
        s ^= s << 13
        s ^= s >>> 17
        s ^= s << 5
        row[x] = (row[x] ?? 0) + ((((s & 0xff) + ((s >>> 8) & 0xff) - 255) * k) >> 8)
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The study

export async function generateCt (options: CtOptions): Promise<GeneratedStudy> {
  const slices = options.slices
  const seriesCount = options.series ?? 1
  const rows = options.rows ?? 512
  const columns = options.columns ?? 512
  for (const [name, value, max] of [['slices', slices, 99_999], ['series', seriesCount, 999], ['rows', rows, 65_535], ['columns', columns, 65_535]] as const) {
    if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`${name} must be an integer from 1 to ${max}, not ${value}`)
  }
  if (rows * columns * 2 > 0xfffffffe) throw new Error(`${rows}x${columns} pixels do not fit in one DICOM element`)
  if (options.seed !== undefined && !Number.isFinite(options.seed)) throw new Error(`seed must be a number, not ${options.seed}`)

  const key = options.seed === undefined ? randomBytes(16).toString('hex') : `seed:${options.seed}`
  const derive = (what: string): string => `radmesh generate-ct ${key} ${what}`
  const studyInstanceUid = options.studyInstanceUid ?? uid(derive('study'))
  if (!/^(0|[1-9]\d*)(\.(0|[1-9]\d*))*$/.test(studyInstanceUid) || studyInstanceUid.length > 64) throw new Error(`studyInstanceUid "${studyInstanceUid}" is not a valid UID`)
  const frameOfReferenceUid = uid(derive('frame of reference'))
  const modality = options.modality ?? 'CT'
  const bodyPart = options.bodyPart ?? 'HEAD'
  const patientName = options.patientName ?? 'DOE^JANE'
  const patientId = options.patientId ?? `RM${String(hash32(derive('patient id')) % 100_000_000).padStart(8, '0')}`
  const studyDescription = options.studyDescription ?? `${bodyPart} WO CONTRAST`
  const accessionNumber = `A${String(hash32(derive('accession')) % 10_000_000).padStart(7, '0')}`
  // Dates: from the seed (so files are reproducible), the current time without one.
  const studyTime = options.seed === undefined
    ? new Date(Math.floor(Date.now() / 1000) * 1000)
    : new Date(Date.UTC(2024, 0, 1) + (hash32(derive('date')) % (365 * 86_400)) * 1000)
  const birthHash = hash32(derive('birth date'))
  const birthYear = studyTime.getUTCFullYear() - 20 - (birthHash % 60)
  const birthDate = `${birthYear}${String(1 + (birthHash >>> 8) % 12).padStart(2, '0')}${String(1 + (birthHash >>> 16) % 28).padStart(2, '0')}`
  const hadBirthday = birthDate.slice(4) <= da(studyTime).slice(4)
  const age = `${String(studyTime.getUTCFullYear() - birthYear - (hadBirthday ? 0 : 1)).padStart(3, '0')}Y`
  const textEncoding: BufferEncoding = /[^\x20-\x7e]/.test(patientName + patientId + studyDescription) ? 'utf8' : 'latin1'

  // Geometry: square pixels across a 250 mm field of view; slices 0.5 to 5 mm apart, thickness = spacing.
  const spacing = Number(ds(FIELD_OF_VIEW_MM / Math.max(rows, columns)))
  const thicknessMicrons = Math.round(Math.min(5, Math.max(0.5, 200 / slices)) * 1000)
  const thickness = thicknessMicrons / 1000
  const x0 = Number(ds(-spacing * (columns - 1) / 2))
  const y0 = Number(ds(-spacing * (rows - 1) / 2))
  const z0Microns = -Math.round((slices - 1) * thicknessMicrons / 2)
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
        const meta: Element[] = [
          { tag: 0x00020001, vr: 'OB', value: Buffer.from([0x00, 0x01]) },
          stringElement(0x00020002, 'UI', CT_IMAGE_STORAGE),
          stringElement(0x00020003, 'UI', sopInstanceUid),
          stringElement(0x00020010, 'UI', EXPLICIT_VR_LITTLE_ENDIAN),
          stringElement(0x00020012, 'UI', IMPLEMENTATION_CLASS_UID),
          stringElement(0x00020013, 'SH', IMPLEMENTATION_VERSION_NAME)
        ]
        meta.unshift(ulElement(0x00020000, encodedLength(meta)))
        const text = (tag: number, vr: string, value: string): Element => stringElement(tag, vr, value, textEncoding)
        const dataset: Element[] = [
          ...(textEncoding === 'utf8' ? [stringElement(0x00080005, 'CS', 'ISO_IR 192')] : []),
          stringElement(0x00080008, 'CS', ['ORIGINAL', 'PRIMARY', 'AXIAL']),
          stringElement(0x00080012, 'DA', da(contentTime)),
          stringElement(0x00080013, 'TM', tm(contentTime)),
          stringElement(0x00080016, 'UI', CT_IMAGE_STORAGE),
          stringElement(0x00080018, 'UI', sopInstanceUid),
          stringElement(0x00080020, 'DA', da(studyTime)),
          stringElement(0x00080021, 'DA', da(seriesTime)),
          stringElement(0x00080022, 'DA', da(acquisitionTime)),
          stringElement(0x00080023, 'DA', da(contentTime)),
          stringElement(0x00080030, 'TM', tm(studyTime)),
          stringElement(0x00080031, 'TM', tm(seriesTime)),
          stringElement(0x00080032, 'TM', tm(acquisitionTime)),
          stringElement(0x00080033, 'TM', tm(contentTime)),
          stringElement(0x00080050, 'SH', accessionNumber),
          stringElement(0x00080060, 'CS', modality),
          stringElement(0x00080070, 'LO', 'RADMESH'),
          stringElement(0x00080080, 'LO', 'RADMESH SYNTHETIC HOSPITAL'),
          stringElement(0x00080090, 'PN', ''),
          text(0x00081030, 'LO', studyDescription),
          stringElement(0x0008103e, 'LO', recon.description),
          stringElement(0x00081090, 'LO', 'SYNTHETIC CT'),
          text(0x00100010, 'PN', patientName),
          text(0x00100020, 'LO', patientId),
          stringElement(0x00100030, 'DA', birthDate),
          stringElement(0x00100040, 'CS', 'O'),
          stringElement(0x00101010, 'AS', age),
          stringElement(0x00180015, 'CS', bodyPart),
          stringElement(0x00180050, 'DS', ds(thickness)),
          stringElement(0x00180060, 'DS', '120'),
          stringElement(0x00181020, 'LO', 'radmesh generate-ct 1'),
          stringElement(0x00181100, 'DS', ds(spacing * Math.max(rows, columns))),
          stringElement(0x00181120, 'DS', '0'),
          stringElement(0x00181130, 'DS', '150'),
          stringElement(0x00181140, 'CS', 'CW'),
          stringElement(0x00181150, 'IS', '1000'),
          stringElement(0x00181151, 'IS', '300'),
          stringElement(0x00181152, 'IS', '300'),
          stringElement(0x00181210, 'SH', recon.kernel),
          stringElement(0x00185100, 'CS', 'HFS'),
          stringElement(0x0020000d, 'UI', studyInstanceUid),
          stringElement(0x0020000e, 'UI', seriesInstanceUid),
          stringElement(0x00200010, 'SH', '1'),
          stringElement(0x00200011, 'IS', String(seriesNumber)),
          stringElement(0x00200012, 'IS', '1'),
          stringElement(0x00200013, 'IS', String(instanceNumber)),
          stringElement(0x00200032, 'DS', [ds(x0), ds(y0), ds(z)]),
          stringElement(0x00200037, 'DS', ['1', '0', '0', '0', '1', '0']),
          stringElement(0x00200052, 'UI', frameOfReferenceUid),
          stringElement(0x00201040, 'LO', ''),
          stringElement(0x00201041, 'DS', ds(z)),
          usElement(0x00280002, 1),
          stringElement(0x00280004, 'CS', 'MONOCHROME2'),
          usElement(0x00280010, rows),
          usElement(0x00280011, columns),
          stringElement(0x00280030, 'DS', [ds(spacing), ds(spacing)]),
          usElement(0x00280100, 16),
          usElement(0x00280101, 16),
          usElement(0x00280102, 15),
          usElement(0x00280103, 1),
          stringElement(0x00281050, 'DS', ds(recon.windowCenter)),
          stringElement(0x00281051, 'DS', ds(recon.windowWidth)),
          stringElement(0x00281052, 'DS', ds(RESCALE_INTERCEPT)),
          stringElement(0x00281053, 'DS', '1'),
          stringElement(0x00281054, 'LO', 'HU'),
          stringElement(0x00281055, 'LO', recon.explanation)
        ]
        const pixelOffset = 128 + 4 + encodedLength(meta) + encodedLength(dataset) + 12
        const total = pixelOffset + pixelBytes
        // One zeroed buffer per file (its ArrayBuffer starts at offset 0, so the pixel view is aligned).
        const buffer = Buffer.from(new ArrayBuffer(total))
        buffer.write('DICM', 128, 'latin1')
        let offset = writeElements(buffer, 132, meta)
        offset = writeElements(buffer, offset, dataset)
        offset = writeHeader(buffer, offset, 0x7fe00010, 'OW', pixelBytes)
        if (offset !== pixelOffset) throw new Error(`internal error: pixel data at ${offset}, expected ${pixelOffset}`)
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
  const usage = 'usage: node scripts/generate-ct.ts --out DIR --slices N [--series N] [--rows N] [--columns N] [--patient-name NAME] [--patient-id ID] [--seed N]'
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
    if (values.out === undefined || values.slices === undefined) throw new Error(`--out and --slices are required\n${usage}`)
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
    process.stdout.write(`study ${study.studyInstanceUid}: ${study.files.length} files in ${study.series.length} series, ${(study.bytes / 1e6).toFixed(1)} MB in ${resolve(values.out)} (${seconds.toFixed(1)} s)\n`)
  } catch (error) {
    process.stderr.write(`generate-ct: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
}
