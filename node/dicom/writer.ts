/**
 * The one DICOM writer, for what radmesh encodes itself: the File Meta Information of a data set received by
 * C-STORE, report SRs, DIMSE command sets, and synthetic CT (scripts/generate-ct.ts). What it reads from
 * elsewhere it keeps as it came; nothing here re-encodes a received object.
 *
 * Little endian, explicit or implicit VR. Elements are given in any order and written sorted by tag (one tag
 * twice is refused); text values are joined with backslashes and padded to an even length (UI with NUL, the
 * rest with a space), in UTF-8 where the Specific Character Set is ISO_IR 192 and the VR takes it, in
 * Latin-1 otherwise (a character beyond Latin-1 is refused, never written as another); binary values are
 * padded with a zero byte; numbers are US or UL; sequences and their items have defined lengths.
 */
import { CHARSET_VRS } from './charsets.ts'
import {
  DICM,
  EXPLICIT_LITTLE,
  ITEM,
  LONG_VRS,
  PREAMBLE_LENGTH,
  type Syntax,
  tag as tagOf,
  tagName
} from './dictionary.ts'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uids.ts'

export type ElementValue = string | string[] | number | Uint8Array | Dataset[]
export interface Element {
  tag: number
  vr: string
  value: ElementValue
}
export type Dataset = Element[]

const EVEN_PADDING = { text: 0x20, uid: 0x00, binary: 0x00 }

const padded = (bytes: Uint8Array, pad: number): Uint8Array =>
  bytes.byteLength % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([pad])])

function textBytes(element: Element, text: string, utf8: boolean): Uint8Array {
  const { tag, vr } = element
  if (utf8 && CHARSET_VRS.has(vr)) return Buffer.from(text, 'utf8')
  if (/[\u0100-\uffff]/.test(text)) throw new RangeError(`${tagName(tag)} ${vr} has characters beyond Latin-1`)
  // Latin-1, so a value read from a peer (a UID in a command) goes back byte for byte, whatever it holds.
  return Buffer.from(text, 'latin1')
}

/** An element's value as written: padded to an even length. */
function valueBytes(element: Element, utf8: boolean): Uint8Array {
  const { vr, value } = element
  if (value instanceof Uint8Array) return padded(value, EVEN_PADDING.binary)
  if (typeof value === 'number') {
    const out = Buffer.alloc(vr === 'UL' ? 4 : 2)
    if (vr === 'UL') out.writeUInt32LE(value)
    else if (vr === 'US') out.writeUInt16LE(value)
    else throw new TypeError(`numbers are written only as US or UL, not ${vr}`)
    return out
  }
  if (Array.isArray(value) && value.length > 0 && typeof value[0] !== 'string') {
    throw new TypeError('a sequence is not a string')
  }
  const text = Array.isArray(value) ? (value as string[]).join('\\') : value
  return padded(textBytes(element, text, utf8), vr === 'UI' ? EVEN_PADDING.uid : EVEN_PADDING.text)
}

/** An element's header: tag, VR (explicit VR) and value length. */
export function elementHeader(tag: number, vr: string, length: number, syntax: Syntax = EXPLICIT_LITTLE): Buffer {
  if (!syntax.little) throw new RangeError('only little endian data sets are written')
  if (!syntax.explicit) {
    const out = Buffer.alloc(8)
    out.writeUInt16LE(tag >>> 16, 0)
    out.writeUInt16LE(tag & 0xffff, 2)
    out.writeUInt32LE(length, 4)
    return out
  }
  const long = LONG_VRS.has(vr)
  const out = Buffer.alloc(long ? 12 : 8)
  out.writeUInt16LE(tag >>> 16, 0)
  out.writeUInt16LE(tag & 0xffff, 2)
  out.write(vr, 4, 'latin1')
  if (long) {
    out.writeUInt32LE(length, 8)
  } else {
    if (length > 0xffff)
      throw new RangeError(`${tagName(tag)} ${vr} value of ${length} bytes does not fit its 16-bit length`)
    out.writeUInt16LE(length, 6)
  }
  return out
}

/** An item of a sequence: its header, then its data set. */
function item(body: Uint8Array): Uint8Array[] {
  const header = Buffer.alloc(8)
  header.writeUInt16LE(ITEM >>> 16, 0)
  header.writeUInt16LE(ITEM & 0xffff, 2)
  header.writeUInt32LE(body.byteLength, 4)
  return [header, body]
}

/**
 * The data set's bytes, elements sorted by tag. `utf8` when its Specific Character Set is ISO_IR 192; explicit
 * VR little endian unless another little endian `syntax` is given.
 */
export function writeDataset(dataset: Dataset, utf8 = false, syntax: Syntax = EXPLICIT_LITTLE): Buffer {
  const parts: Uint8Array[] = []
  let previous = -1
  for (const element of [...dataset].sort((a, b) => a.tag - b.tag)) {
    if (element.tag === previous) throw new RangeError(`${tagName(element.tag)} twice in one data set`)
    previous = element.tag
    const body =
      element.vr === 'SQ'
        ? Buffer.concat((element.value as Dataset[]).flatMap(items => item(writeDataset(items, utf8, syntax))))
        : valueBytes(element, utf8)
    parts.push(elementHeader(element.tag, element.vr, body.byteLength, syntax), body)
  }
  return Buffer.concat(parts)
}

/** The elements of one group, after its Group Length (gggg,0000), as File Meta Information and commands have. */
export function writeGroup(group: number, dataset: Dataset, syntax: Syntax = EXPLICIT_LITTLE): Buffer {
  const outside = dataset.find(element => element.tag >>> 16 !== group)
  if (outside !== undefined) throw new RangeError(`${tagName(outside.tag)} is not of group ${group.toString(16)}`)
  const body = writeDataset(dataset, false, syntax)
  const length = Buffer.alloc(4)
  length.writeUInt32LE(body.byteLength)
  return Buffer.concat([writeDataset([{ tag: tagOf(group, 0), vr: 'UL', value: length }], false, syntax), body])
}

export interface MetaFields {
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
  sourceAeTitle?: string
  /** radmesh's own unless given */
  implementationClassUid?: string
  implementationVersionName?: string
}

/**
 * The start of a Part 10 file for a data set: a zero preamble (never an executable's, CVE-2019-11687), "DICM",
 * and its File Meta Information.
 */
export function part10Header(meta: MetaFields): Buffer {
  const meta2 = (element: number, vr: string, value: ElementValue): Element => ({
    tag: tagOf(0x0002, element),
    vr,
    value
  })
  const elements = [
    meta2(0x0001, 'OB', new Uint8Array([0, 1])),
    meta2(0x0002, 'UI', meta.sopClassUid),
    meta2(0x0003, 'UI', meta.sopInstanceUid),
    meta2(0x0010, 'UI', meta.transferSyntaxUid),
    meta2(0x0012, 'UI', meta.implementationClassUid ?? IMPLEMENTATION_CLASS_UID),
    meta2(0x0013, 'SH', meta.implementationVersionName ?? IMPLEMENTATION_VERSION_NAME),
    ...(meta.sourceAeTitle === undefined ? [] : [meta2(0x0016, 'AE', meta.sourceAeTitle.trim())])
  ]
  return Buffer.concat([Buffer.alloc(PREAMBLE_LENGTH), Buffer.from(DICM), writeGroup(0x0002, elements)])
}
