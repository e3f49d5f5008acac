/**
 * A small writer of explicit VR little endian data sets, for the objects radmesh creates itself (report SRs).
 * Elements are given in any order and written sorted by tag; strings are padded to even length (UI with NUL,
 * the rest with a space); sequences and items have defined lengths.
 */
export type ElementValue = string | string[] | number | Uint8Array | Dataset[]
export interface Element { tag: number, vr: string, value: ElementValue }
export type Dataset = Element[]

/** VRs with a 4-byte length after 2 reserved bytes, in explicit VR little endian. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const TEXT_VRS_UTF8 = new Set(['PN', 'LO', 'SH', 'ST', 'LT', 'UT', 'UC'])

export const tag = (group: number, element: number): number => ((group << 16) | element) >>> 0

function valueBytes (element: Element, utf8: boolean): Uint8Array {
  const { vr, value } = element
  if (value instanceof Uint8Array) return value.byteLength % 2 === 0 ? value : Buffer.concat([value, Buffer.from([0])])
  if (typeof value === 'number') {
    const out = Buffer.alloc(vr === 'UL' ? 4 : 2)
    if (vr === 'UL') out.writeUInt32LE(value)
    else if (vr === 'US') out.writeUInt16LE(value)
    else throw new TypeError(`numbers are written only as US or UL, not ${vr}`)
    return out
  }
  if (Array.isArray(value) && value.length > 0 && typeof value[0] !== 'string') throw new TypeError('a sequence is not a string')
  const text = Array.isArray(value) ? (value as string[]).join('\\') : value
  const bytes = Buffer.from(text, utf8 && TEXT_VRS_UTF8.has(vr) ? 'utf8' : 'latin1')
  return bytes.byteLength % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([vr === 'UI' ? 0 : 0x20])])
}

function header (element: Element, length: number): Uint8Array {
  const long = LONG_VRS.has(element.vr)
  const out = Buffer.alloc(long ? 12 : 8)
  out.writeUInt16LE(element.tag >>> 16, 0)
  out.writeUInt16LE(element.tag & 0xffff, 2)
  out.write(element.vr, 4, 'latin1')
  if (long) out.writeUInt32LE(length, 8)
  else {
    if (length > 0xffff) throw new RangeError(`value of (${(element.tag >>> 16).toString(16)},${(element.tag & 0xffff).toString(16)}) is too long for ${element.vr}`)
    out.writeUInt16LE(length, 6)
  }
  return out
}

/** The data set's bytes; `utf8` when Specific Character Set is ISO_IR 192. */
export function writeDataset (dataset: Dataset, utf8: boolean): Buffer {
  const parts: Uint8Array[] = []
  for (const element of [...dataset].sort((a, b) => a.tag - b.tag)) {
    if (element.vr === 'SQ') {
      const items = (element.value as Dataset[]).map(item => {
        const body = writeDataset(item, utf8)
        const itemHeader = Buffer.alloc(8)
        itemHeader.writeUInt16LE(0xfffe, 0)
        itemHeader.writeUInt16LE(0xe000, 2)
        itemHeader.writeUInt32LE(body.byteLength, 4)
        return Buffer.concat([itemHeader, body])
      })
      const body = Buffer.concat(items)
      parts.push(header(element, body.byteLength), body)
    } else {
      const body = valueBytes(element, utf8)
      parts.push(header(element, body.byteLength), body)
    }
  }
  return Buffer.concat(parts)
}
