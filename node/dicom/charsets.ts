/**
 * Character sets (PS3.3 C.12.1.1.2, PS3.5 6.1): which text VRs the Specific Character Set (0008,0005) applies
 * to, and decoding their values with it, single-byte, multi-byte and ISO 2022 code extensions alike. Unknown
 * terms fall back to the default repertoire. Every other VR is in the default repertoire.
 */

/** Text VRs whose values are in the Specific Character Set; the others are in the default repertoire. */
export const CHARSET_VRS: ReadonlySet<string> = new Set(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN'])

/** Whether a Specific Character Set value names UTF-8 (ISO_IR 192) among its terms. */
export const namesUtf8 = (specificCharacterSet: Uint8Array): boolean =>
  /ISO_IR 192/.test(Buffer.from(specificCharacterSet).toString('latin1'))

export interface TextCodec {
  decode(bytes: Uint8Array): string
}

const latin1Decoder = new TextDecoder('latin1')
/** Bytes as the default repertoire reads them (WHATWG "latin1", that is windows-1252). */
export const latin1Text = (bytes: Uint8Array): string => latin1Decoder.decode(bytes)

/** Single-byte and multi-byte character sets without code extensions, by defined term. */
const CHARSETS: Record<string, string> = {
  '': 'windows-1252',
  'ISO_IR 6': 'windows-1252',
  'ISO_IR 100': 'windows-1252',
  'ISO_IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15',
  'ISO_IR 13': 'shift_jis',
  'ISO_IR 166': 'windows-874',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk'
}

type G0 = 'ascii' | 'jisx0208' | 'jisx0212'

/** ISO 2022 defined terms: what each sets up as its initial G0 and G1. */
const ISO2022_TERMS: Record<string, { g0: G0; g1?: string }> = {
  'ISO 2022 IR 6': { g0: 'ascii' },
  'ISO 2022 IR 100': { g0: 'ascii', g1: 'windows-1252' },
  'ISO 2022 IR 101': { g0: 'ascii', g1: 'iso-8859-2' },
  'ISO 2022 IR 109': { g0: 'ascii', g1: 'iso-8859-3' },
  'ISO 2022 IR 110': { g0: 'ascii', g1: 'iso-8859-4' },
  'ISO 2022 IR 144': { g0: 'ascii', g1: 'iso-8859-5' },
  'ISO 2022 IR 127': { g0: 'ascii', g1: 'iso-8859-6' },
  'ISO 2022 IR 126': { g0: 'ascii', g1: 'iso-8859-7' },
  'ISO 2022 IR 138': { g0: 'ascii', g1: 'iso-8859-8' },
  'ISO 2022 IR 148': { g0: 'ascii', g1: 'iso-8859-9' },
  'ISO 2022 IR 203': { g0: 'ascii', g1: 'iso-8859-15' },
  'ISO 2022 IR 13': { g0: 'ascii', g1: 'shift_jis' },
  'ISO 2022 IR 166': { g0: 'ascii', g1: 'windows-874' },
  'ISO 2022 IR 87': { g0: 'jisx0208' },
  'ISO 2022 IR 159': { g0: 'jisx0212' },
  'ISO 2022 IR 149': { g0: 'ascii', g1: 'euc-kr' },
  'ISO 2022 IR 58': { g0: 'ascii', g1: 'gbk' }
}

/** Escape sequences (after ESC) and the G0 or G1 set each one designates. */
const ESCAPES: Array<{ sequence: number[]; g0?: G0; g1?: string }> = [
  { sequence: [0x28, 0x42], g0: 'ascii' }, // ( B   ISO-IR 6
  { sequence: [0x28, 0x4a], g0: 'ascii' }, // ( J   JIS X 0201 romaji
  { sequence: [0x24, 0x42], g0: 'jisx0208' }, // $ B   ISO-IR 87
  { sequence: [0x24, 0x40], g0: 'jisx0208' }, // $ @   JIS C 6226-1978
  { sequence: [0x24, 0x28, 0x44], g0: 'jisx0212' }, // $ ( D ISO-IR 159
  { sequence: [0x29, 0x49], g1: 'shift_jis' }, // ) I   ISO-IR 13 katakana
  { sequence: [0x24, 0x29, 0x43], g1: 'euc-kr' }, // $ ) C ISO-IR 149
  { sequence: [0x24, 0x29, 0x41], g1: 'gbk' }, // $ ) A ISO-IR 58
  { sequence: [0x2d, 0x41], g1: 'windows-1252' },
  { sequence: [0x2d, 0x42], g1: 'iso-8859-2' },
  { sequence: [0x2d, 0x43], g1: 'iso-8859-3' },
  { sequence: [0x2d, 0x44], g1: 'iso-8859-4' },
  { sequence: [0x2d, 0x4c], g1: 'iso-8859-5' },
  { sequence: [0x2d, 0x47], g1: 'iso-8859-6' },
  { sequence: [0x2d, 0x46], g1: 'iso-8859-7' },
  { sequence: [0x2d, 0x48], g1: 'iso-8859-8' },
  { sequence: [0x2d, 0x4d], g1: 'iso-8859-9' },
  { sequence: [0x2d, 0x62], g1: 'iso-8859-15' },
  { sequence: [0x2d, 0x54], g1: 'windows-874' }
]

const decoders = new Map<string, TextDecoder>()
function decoder(label: string): TextDecoder {
  let found = decoders.get(label)
  if (found === undefined) {
    found = new TextDecoder(label)
    decoders.set(label, found)
  }
  return found
}

/** The codec for a Specific Character Set value list; unknown terms fall back to the default repertoire. */
export function textCodec(terms: string[]): TextCodec {
  const normalized = terms.map(term =>
    term
      .trim()
      .toUpperCase()
      .replace(/^ISO[_ ]IR[_ ](\d+)$/, 'ISO_IR $1')
      .replace(/^ISO[_ ]2022[_ ]IR[_ ](\d+)$/, 'ISO 2022 IR $1')
  )
  const extended = normalized.some(term => term.startsWith('ISO 2022'))
  if (!extended) return decoder(CHARSETS[normalized[0] ?? ''] ?? 'windows-1252')
  const first = ISO2022_TERMS[normalized[0] ?? ''] ?? { g0: 'ascii' as G0 }
  return { decode: bytes => decodeIso2022(bytes, first.g0, first.g1 ?? 'windows-1252') }
}

/** Decodes text with ISO 2022 escape sequences switching G0 (bytes below 0x80) and G1 (0x80 and above). */
function decodeIso2022(bytes: Uint8Array, initialG0: G0, initialG1: string): string {
  let g0 = initialG0
  let g1 = initialG1
  let out = ''
  let i = 0
  while (i < bytes.length) {
    if (bytes[i] === 0x1b) {
      const designation = ESCAPES.find(e => e.sequence.every((b, k) => bytes[i + 1 + k] === b))
      if (designation === undefined) {
        i++
        continue
      }
      if (designation.g0 !== undefined) g0 = designation.g0
      if (designation.g1 !== undefined) g1 = designation.g1
      i += 1 + designation.sequence.length
      continue
    }
    let j = i
    while (j < bytes.length && bytes[j] !== 0x1b) j++
    out += decodeRun(bytes.subarray(i, j), g0, g1)
    i = j
  }
  return out
}

function decodeRun(run: Uint8Array, g0: G0, g1: string): string {
  let out = ''
  let i = 0
  while (i < run.length) {
    let j = i
    const high = (run[i] as number) >= 0x80
    while (j < run.length && (run[j] as number) >= 0x80 === high) j++
    const part = run.subarray(i, j)
    out += high ? decoder(g1).decode(part) : g0 === 'ascii' ? latin1Text(part) : decodeJis(part, g0)
    i = j
  }
  return out
}

/** JIS X 0208 / 0212 two-byte text in G0, decoded through its EUC-JP form. */
function decodeJis(part: Uint8Array, g0: 'jisx0208' | 'jisx0212'): string {
  const euc: number[] = []
  for (let i = 0; i < part.length; i++) {
    const b = part[i] as number
    const next = part[i + 1]
    if (b >= 0x21 && b <= 0x7e && next !== undefined && next >= 0x21 && next <= 0x7e) {
      if (g0 === 'jisx0212') euc.push(0x8f)
      euc.push(b | 0x80, next | 0x80)
      i++
    } else {
      euc.push(b)
    }
  }
  return decoder('euc-jp').decode(new Uint8Array(euc))
}
