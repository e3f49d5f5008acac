/**
 * Values in the DICOM JSON model (PS3.18 F.2): what each VR becomes. Numbers are numbers (an IS or DS that is
 * not a number stays a string, as CP 1861 allows; FL/FD NaN and infinities are the strings "NaN", "Infinity",
 * "-Infinity"; SV/UV beyond 2^53 are decimal strings); AT values are 8-digit hex strings; PN values are
 * `{ Alphabetic, Ideographic, Phonetic }`; empty values are absent and empty items of a multi-valued one null.
 */
import { CHARSET_VRS, latin1Text, type TextCodec } from './charsets.ts'
import { BINARY_VRS, hex4, PIXEL_DATA, SINGLE_VALUE_TEXT_VRS, WORD_SIZE } from './dictionary.ts'
import { withoutTrailingPadding } from './padding.ts'

export interface DicomJsonAttribute {
  vr: string
  Value?: unknown[]
  BulkDataURI?: string
  InlineBinary?: string
}

export type DicomJsonDataset = Record<string, DicomJsonAttribute>

/**
 * Names the bulk data of one element for `BulkDataURI`. For a top-level element the argument is its tag
 * ("7FE00010"); for an element inside a sequence it is the path to it: sequence tag, item index (from 0),
 * tag, separated by "/" ("54000100/0/54001010"). A top-level path is therefore exactly the tag.
 */
export type BulkDataUriFor = (path: string) => string

/** Binary values longer than this many bytes become BulkDataURI; shorter ones InlineBinary. */
export const BULK_DATA_THRESHOLD = 1024

/**
 * One value in the DICOM JSON model: binary values inline (base64, little endian) up to BULK_DATA_THRESHOLD
 * bytes and bulk data past it, numbers as numbers, text decoded with `charset` where its VR takes it, split at
 * backslashes and stripped of padding.
 */
export function convertValue(
  tag: number,
  vr: string,
  value: Uint8Array,
  little: boolean,
  charset: TextCodec,
  path: string,
  bulkDataUri: BulkDataUriFor
): DicomJsonAttribute {
  if (value.length === 0) return { vr }
  if (BINARY_VRS.has(vr) || tag === PIXEL_DATA) {
    if (tag === PIXEL_DATA || value.length > BULK_DATA_THRESHOLD) return { vr, BulkDataURI: bulkDataUri(path) }
    return { vr, InlineBinary: base64(little ? value : swapWords(value, WORD_SIZE[vr] ?? 1)) }
  }
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength)
  switch (vr) {
    case 'US':
      return numbers(vr, value, 2, i => view.getUint16(i, little))
    case 'SS':
      return numbers(vr, value, 2, i => view.getInt16(i, little))
    case 'UL':
      return numbers(vr, value, 4, i => view.getUint32(i, little))
    case 'SL':
      return numbers(vr, value, 4, i => view.getInt32(i, little))
    case 'FL':
      return numbers(vr, value, 4, i => finite(view.getFloat32(i, little)))
    case 'FD':
      return numbers(vr, value, 8, i => finite(view.getFloat64(i, little)))
    case 'SV':
      return numbers(vr, value, 8, i => bigNumber(view.getBigInt64(i, little)))
    case 'UV':
      return numbers(vr, value, 8, i => bigNumber(view.getBigUint64(i, little)))
    case 'AT':
      return numbers(vr, value, 4, i => hex4(view.getUint16(i, little)) + hex4(view.getUint16(i + 2, little)))
  }
  const text = CHARSET_VRS.has(vr) ? charset.decode(value) : latin1Text(value)
  if (SINGLE_VALUE_TEXT_VRS.has(vr)) {
    const single = withoutTrailingPadding(text)
    return single === '' ? { vr } : { vr, Value: [single] }
  }
  const keepsLeadingSpaces = vr === 'PN' || vr === 'UC'
  const parts = text.split('\\').map(part => {
    const value = withoutTrailingPadding(part)
    return keepsLeadingSpaces ? value : value.replace(/^ +/, '')
  })
  if (parts.every(part => part === '')) return { vr }
  const values = parts.map(part => {
    if (part === '') return null
    if (vr === 'PN') return personName(part)
    if (vr === 'IS') return /^[+-]?\d+$/.test(part) && Number.isSafeInteger(Number(part)) ? Number(part) : part
    if (vr === 'DS') return DECIMAL_STRING.test(part) && Number.isFinite(Number(part)) ? Number(part) : part
    return part
  })
  return { vr, Value: values }
}

/** A DS value (PS3.5 6.2). `\d+(\.\d*)?`, not `\d+\.?\d*`: that backtracks quadratically on a run of digits. */
const DECIMAL_STRING = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

function numbers(vr: string, value: Uint8Array, size: number, read: (offset: number) => unknown): DicomJsonAttribute {
  const count = Math.floor(value.length / size)
  if (count === 0) return { vr }
  const values: unknown[] = []
  for (let i = 0; i < count; i++) values.push(read(i * size))
  return { vr, Value: values }
}

function finite(n: number): number | string {
  return Number.isFinite(n) ? n : String(n)
}

function bigNumber(n: bigint): number | string {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString()
}

/** A PN value as the DICOM JSON model's object of its three component groups (PS3.18 F.2.2). */
export function personName(value: string): Record<string, string> {
  const [alphabetic = '', ideographic = '', phonetic = ''] = value.split('=')
  const name: Record<string, string> = {}
  if (alphabetic !== '') name['Alphabetic'] = alphabetic
  if (ideographic !== '') name['Ideographic'] = ideographic
  if (phonetic !== '') name['Phonetic'] = phonetic
  return name
}

function swapWords(value: Uint8Array, size: number): Uint8Array {
  if (size === 1) return value
  const out = new Uint8Array(value.length)
  const whole = value.length - (value.length % size)
  for (let i = 0; i < whole; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = value[i + size - 1 - j] as number
  }
  out.set(value.subarray(whole), whole)
  return out
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}
