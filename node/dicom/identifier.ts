/**
 * The identifiers of C-FIND, C-MOVE and C-GET (PS3.4 C.4): a small data set of keys, read from the bytes an SCU
 * sent in the negotiated transfer syntax (its text decoded with its Specific Character Set) and written back
 * as response identifiers. Values are text as DICOM writes it: a Person Name is its component groups joined
 * with `=`, a number its decimal digits; a sequence holds items of the same kind.
 *
 * A response identifier is written in the character set of the request when that can hold it (ISO_IR 100, or
 * the default repertoire for plain ASCII), else in UTF-8 (ISO_IR 192), and says which in (0008,0005).
 */
import { EXPLICIT_LITTLE, hex8, IMPLICIT_LITTLE, SPECIFIC_CHARACTER_SET, TRANSFER_SYNTAX } from './dictionary.ts'
import { datasetToDicomJson, type DicomJsonAttribute, type DicomJsonDataset } from './json.ts'
import { type Element, writeDataset } from './writer.ts'

export type IdentifierValue = { vr: string; values: string[] } | { vr: 'SQ'; items: Identifier[] }
/** Keys by 8-hex tag, upper case. */
export type Identifier = Map<string, IdentifierValue>

export const QUERY_RETRIEVE_LEVEL = '00080052'
export const CHARSET_KEY = hex8(SPECIFIC_CHARACTER_SET)

const syntaxOf = (transferSyntaxUid: string) =>
  transferSyntaxUid === TRANSFER_SYNTAX.implicitLittle ? IMPLICIT_LITTLE : EXPLICIT_LITTLE

function textOf(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'object') {
    const { Alphabetic = '', Ideographic = '', Phonetic = '' } = value as Record<string, string>
    return [Alphabetic, Ideographic, Phonetic].join('=').replace(/=+$/, '')
  }
  return String(value)
}

function fromJson(dataset: DicomJsonDataset): Identifier {
  const identifier: Identifier = new Map()
  for (const [tag, attribute] of Object.entries(dataset) as Array<[string, DicomJsonAttribute]>) {
    if (attribute.vr === 'SQ') {
      const items = (attribute.Value ?? []) as DicomJsonDataset[]
      identifier.set(tag, { vr: 'SQ', items: items.map(fromJson) })
    } else {
      identifier.set(tag, { vr: attribute.vr, values: (attribute.Value ?? []).map(textOf) })
    }
  }
  return identifier
}

/** An identifier's bytes, in a little endian transfer syntax; InvalidDicomError when they are not a data set. */
export function readIdentifier(bytes: Uint8Array, transferSyntaxUid: string): Identifier {
  return fromJson(datasetToDicomJson(bytes, syntaxOf(transferSyntaxUid), path => path))
}

/** The one text value of a key ('' when absent or empty; multiple values joined with a backslash). */
export function keyText(identifier: Identifier, tag: string): string | undefined {
  const value = identifier.get(tag)
  if (value === undefined) return undefined
  return 'values' in value ? value.values.join('\\').trim() : ''
}

/** Binary VRs a response never carries a value for (identifiers are text keys). */
const NUMBER_VRS = new Set(['US', 'UL'])
const NO_VALUE_VRS = new Set(['SS', 'SL', 'FL', 'FD', 'OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'SV', 'UV', 'UN', 'AT'])

function elementsOf(identifier: Identifier): Element[] {
  const elements: Element[] = []
  for (const [key, value] of identifier) {
    const tag = Number.parseInt(key, 16)
    if (tag === SPECIFIC_CHARACTER_SET) continue
    if ('items' in value) {
      elements.push({ tag, vr: 'SQ', value: value.items.map(elementsOf) })
      continue
    }
    const { vr, values } = value
    const first = values[0]
    if (NUMBER_VRS.has(vr)) {
      const n = Number(first)
      const ok = first !== undefined && /^\d+$/.test(first.trim()) && n <= (vr === 'US' ? 0xffff : 0xffffffff)
      elements.push({ tag, vr, value: ok ? n : new Uint8Array(0) })
    } else if (NO_VALUE_VRS.has(vr)) {
      elements.push({ tag, vr, value: new Uint8Array(0) })
    } else {
      elements.push({ tag, vr, value: values })
    }
  }
  return elements
}

function allText(identifier: Identifier): string {
  let text = ''
  for (const value of identifier.values()) {
    text += 'items' in value ? value.items.map(allText).join('') : value.values.join('')
  }
  return text
}

/**
 * A response identifier's bytes. `requestCharset`: the Specific Character Set of the request, kept when it can
 * hold every value (UTF-8 is used otherwise).
 */
export function writeIdentifier(identifier: Identifier, transferSyntaxUid: string, requestCharset: string): Buffer {
  const text = allText(identifier)
  const requested = requestCharset.trim().toUpperCase()
  let charset: string
  if (requested === 'ISO_IR 192' || /[\u0100-\u{10ffff}]/u.test(text)) charset = 'ISO_IR 192'
  else if (/[\x80-\xff]/.test(text)) charset = 'ISO_IR 100'
  else charset = requested.startsWith('ISO 2022') || requested === '' ? '' : requestCharset.trim()
  const elements = elementsOf(identifier)
  if (charset !== '' || identifier.has(CHARSET_KEY))
    elements.push({ tag: SPECIFIC_CHARACTER_SET, vr: 'CS', value: charset })
  return writeDataset(elements, charset === 'ISO_IR 192', syntaxOf(transferSyntaxUid))
}
