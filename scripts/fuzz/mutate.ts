/**
 * DICOM mutations for the fuzzer's dicom and stow kinds: real files (the pydicom corpus, generated CT slices)
 * read just enough to find their elements (./dataset.ts), then changed the way a broken modality or an
 * attacker would: bit flips, byte runs, truncation, lengths set to huge or odd values, VRs replaced, size
 * attributes (frames, rows, columns…) set to huge values, deep or wide sequences, duplicated
 * elements, damaged UIDs (deflate bombs are in ./deflate.ts). Every choice comes from the case's generator
 * (./rng.ts), so a case's input is the same every time it is replayed.
 */
import {
  ITEM,
  ITEM_DELIMITER as ITEM_END,
  SEQUENCE_DELIMITER as SEQUENCE_END,
  UNDEFINED_LENGTH as UNDEFINED
} from '../../node/dicom/dictionary.ts'
import {
  type Element,
  encodeElement,
  hexTag,
  insertElement,
  replaceRange,
  setElement,
  type Syntax,
  syntaxOf,
  textValue,
  u16,
  u32,
  walk
} from './dataset.ts'
import type { Rng } from './rng.ts'

// ---------------------------------------------------------------------------------------------------
// Mutations of a data set

export interface Mutated {
  dataset: Buffer
  transferSyntaxUid: string
  what: string[]
}

// The fuzzer's own VR list, not the dictionary's: it includes names no reader accepts and its order fixes what a
// seed draws, so recorded seeds replay the same.
const VRS = [
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'OB',
  'OD',
  'OF',
  'OL',
  'OW',
  'PN',
  'SH',
  'SL',
  'SQ',
  'SS',
  'ST',
  'SV',
  'TM',
  'UC',
  'UI',
  'UL',
  'UN',
  'UR',
  'US',
  'UT',
  'UV',
  'ZZ',
  '\0\0',
  'ob',
  '  '
]
const HUGE_LENGTHS = [0xffffffff, 0xfffffffe, 0x7fffffff, 0x80000000, 0x10000000, 0xffff, 0xfffe, 1, 3]

/** Size attributes: the value the element gets is one of `values`. */
interface SizeAttribute {
  tag: number
  vr: string
  name: string
  values: readonly string[] | readonly number[]
}
const SIZE_ATTRIBUTES: readonly SizeAttribute[] = [
  {
    tag: 0x00280008,
    vr: 'IS',
    name: 'NumberOfFrames',
    values: ['1000000000', '100000000', '2147483648', '99999999999', '-1', '0', '1e9', ' 7 ', 'X', '65536']
  },
  { tag: 0x00280010, vr: 'US', name: 'Rows', values: [0, 1, 0xffff, 0x8000, 3] },
  { tag: 0x00280011, vr: 'US', name: 'Columns', values: [0, 1, 0xffff, 0x8000, 3] },
  { tag: 0x00280002, vr: 'US', name: 'SamplesPerPixel', values: [0, 2, 3, 4, 0xffff] },
  { tag: 0x00280100, vr: 'US', name: 'BitsAllocated', values: [0, 1, 7, 12, 32, 64, 0xffff] },
  { tag: 0x00280101, vr: 'US', name: 'BitsStored', values: [0, 17, 64, 0xffff] },
  { tag: 0x00280102, vr: 'US', name: 'HighBit', values: [0, 31, 0xffff] },
  { tag: 0x00280103, vr: 'US', name: 'PixelRepresentation', values: [2, 0xffff] },
  { tag: 0x00280006, vr: 'US', name: 'PlanarConfiguration', values: [1, 2, 0xffff] },
  {
    tag: 0x00280004,
    vr: 'CS',
    name: 'PhotometricInterpretation',
    values: ['YBR_FULL_422', 'PALETTE COLOR', 'RGB', 'XYZ', '']
  },
  { tag: 0x00281050, vr: 'DS', name: 'WindowCenter', values: ['1e308', 'NaN', '-Infinity', '1\\2\\3\\4\\5\\6\\7', ''] },
  { tag: 0x00283002, vr: 'US', name: 'LUTDescriptor', values: [0xffff, 0] }
]

function sizeValue(vr: string, value: string | number, syntax: Syntax): Buffer {
  if (vr === 'US') return u16(Number(value), syntax.little)
  return textValue(String(value), vr)
}

/** SQ nested `depth` deep (undefined or defined lengths), each item holding the next sequence. */
function nestedSequence(tag: number, depth: number, undefinedLength: boolean, syntax: Syntax): Buffer {
  const itemTag = (t: number): Buffer => Buffer.concat([u16(t >>> 16, syntax.little), u16(t & 0xffff, syntax.little)])
  if (undefinedLength) {
    const open = Buffer.concat([
      encodeElement(tag, 'SQ', Buffer.alloc(0), syntax, UNDEFINED),
      itemTag(ITEM),
      u32(UNDEFINED, syntax.little)
    ])
    const close = Buffer.concat([
      itemTag(ITEM_END),
      u32(0, syntax.little),
      itemTag(SEQUENCE_END),
      u32(0, syntax.little)
    ])
    const out = Buffer.allocUnsafe((open.length + close.length) * depth)
    for (let i = 0; i < depth; i++) open.copy(out, i * open.length)
    for (let i = 0; i < depth; i++) close.copy(out, depth * open.length + i * close.length)
    return out
  }
  let inner: Buffer = Buffer.alloc(0)
  for (let i = 0; i < depth; i++) {
    const item = Buffer.concat([itemTag(ITEM), u32(inner.length, syntax.little), inner])
    inner = encodeElement(tag, 'SQ', item, syntax)
  }
  return inner
}

/** One SQ with `count` empty items. */
function wideSequence(tag: number, count: number, syntax: Syntax): Buffer {
  const item = Buffer.concat([u16(0xfffe, syntax.little), u16(0xe000, syntax.little), u32(0, syntax.little)])
  const items = Buffer.allocUnsafe(item.length * count)
  for (let i = 0; i < count; i++) item.copy(items, i * item.length)
  return encodeElement(tag, 'SQ', items, syntax)
}

type Mutation = (
  dataset: Buffer,
  syntax: Syntax,
  rng: Rng,
  elements: Element[]
) => { dataset: Buffer; what: string } | undefined

const pickElement = (
  rng: Rng,
  elements: Element[],
  filter: (e: Element) => boolean = () => true
): Element | undefined => {
  const candidates = elements.filter(filter)
  return candidates.length === 0 ? undefined : rng.pick(candidates)
}

const MUTATIONS: ReadonlyArray<[name: string, weight: number, mutation: Mutation]> = [
  [
    'bit flips',
    4,
    (dataset, _syntax, rng) => {
      if (dataset.length === 0) return undefined
      const out = Buffer.from(dataset)
      const n = rng.range(1, 16)
      for (let i = 0; i < n; i++) {
        const at = rng.int(out.length)
        out[at] = (out[at] as number) ^ (1 << rng.int(8))
      }
      return { dataset: out, what: `${n} bit flips` }
    }
  ],
  [
    'byte run',
    3,
    (dataset, _syntax, rng) => {
      if (dataset.length === 0) return undefined
      const out = Buffer.from(dataset)
      const at = rng.int(out.length)
      const length = Math.min(out.length - at, rng.size(4096))
      const fill = rng.pick([0x00, 0xff, 0x20, 0x7f, -1])
      if (fill < 0) rng.bytes(length).copy(out, at)
      else out.fill(fill, at, at + length)
      return { dataset: out, what: `${length} bytes at ${at} set to ${fill < 0 ? 'random' : fill}` }
    }
  ],
  [
    'truncation',
    3,
    (dataset, _syntax, rng, elements) => {
      const e = rng.chance(0.5) ? pickElement(rng, elements) : undefined
      const at =
        e === undefined ? rng.int(dataset.length) : e.offset + rng.int(Math.max(1, Math.min(16, e.end - e.offset)))
      return { dataset: dataset.subarray(0, at), what: `truncated at ${at} of ${dataset.length}` }
    }
  ],
  [
    'length field',
    4,
    (dataset, syntax, rng, elements) => {
      const e = pickElement(rng, elements)
      if (e === undefined) return undefined
      const out = Buffer.from(dataset)
      const length =
        e.lengthBytes === 2
          ? rng.pick([0xffff, 0xfffe, 0, 1, (e.length + 1) & 0xffff])
          : rng.pick([...HUGE_LENGTHS, e.length + 1, Math.max(0, e.length - 1), dataset.length - e.valueOffset + 2])
      if (e.lengthBytes === 2) out.set(u16(length, syntax.little), e.lengthOffset)
      else out.set(u32(length, syntax.little), e.lengthOffset)
      return { dataset: out, what: `length of (${hexTag(e.tag)}) ${e.length} -> ${length}` }
    }
  ],
  [
    'VR replaced',
    3,
    (dataset, syntax, rng, elements) => {
      if (!syntax.explicit) return undefined
      const e = pickElement(rng, elements, el => el.vr !== undefined)
      if (e === undefined) return undefined
      const vr = rng.pick(VRS)
      const out = Buffer.from(dataset)
      out.write(vr, e.offset + 4, 'latin1')
      return { dataset: out, what: `VR of (${hexTag(e.tag)}) ${e.vr} -> ${JSON.stringify(vr)}` }
    }
  ],
  [
    'size attribute',
    5,
    (dataset, syntax, rng, elements) => {
      if (!syntax.little) return undefined
      const attribute = rng.pick(SIZE_ATTRIBUTES)
      const value = rng.pick(attribute.values as ReadonlyArray<string | number>)
      return {
        dataset: setElement(
          dataset,
          syntax,
          elements,
          attribute.tag,
          attribute.vr,
          sizeValue(attribute.vr, value, syntax)
        ),
        what: `${attribute.name} = ${JSON.stringify(value)}`
      }
    }
  ],
  [
    'nested sequences',
    2,
    (dataset, syntax, rng, elements) => {
      const depth = rng.pick([8, 64, 512, 4096, 20_000, 100_000])
      const undefinedLength = rng.chance(0.6) || depth > 4096
      const tag = rng.pick([0x0040a730, 0x00081115, 0x00089215])
      return {
        dataset: insertElement(dataset, elements, tag, nestedSequence(tag, depth, undefinedLength, syntax)),
        what: `(${hexTag(tag)}) sequences nested ${depth} deep, ${undefinedLength ? 'undefined' : 'defined'} lengths`
      }
    }
  ],
  [
    'wide sequence',
    1,
    (dataset, syntax, rng, elements) => {
      const count = rng.pick([1000, 100_000, 400_000])
      return {
        dataset: insertElement(dataset, elements, 0x00081115, wideSequence(0x00081115, count, syntax)),
        what: `a sequence of ${count} empty items`
      }
    }
  ],
  [
    'duplicated element',
    3,
    (dataset, _syntax, rng, elements) => {
      const e = pickElement(rng, elements, el => el.depth === 0)
      if (e === undefined) return undefined
      const copy = dataset.subarray(e.offset, e.end)
      const topLevel = elements.filter(el => el.depth === 0)
      const at = rng.chance(0.5) ? e.end : rng.pick(topLevel).offset
      return {
        dataset: replaceRange(dataset, at, at, Buffer.from(copy)),
        what: `(${hexTag(e.tag)}) duplicated at ${at}`
      }
    }
  ],
  [
    'UID damaged',
    3,
    (dataset, syntax, rng, elements) => {
      const isUid = (el: Element): boolean =>
        el.vr === 'UI' || [0x00080016, 0x00080018, 0x0020000d, 0x0020000e].includes(el.tag)
      const e = pickElement(rng, elements, el => el.depth === 0 && isUid(el))
      if (e === undefined) return undefined
      const value = rng.pick([
        '',
        '1',
        '1.2.',
        '.1.2',
        '1..2',
        '01.2.3',
        '1.2.3a',
        '1.2.3 4',
        `1.${'9'.repeat(70)}`,
        '1.2\\1.3',
        '\u00e9\u00e9.1',
        `2.25.${'1'.repeat(200)}`,
        '1.2.840.10008.5.1.4.1.1.2',
        '../../etc/passwd',
        '%s%n',
        '1.2.3\0\0\0\0'
      ])
      return {
        dataset: replaceRange(dataset, e.offset, e.end, encodeElement(e.tag, 'UI', textValue(value, 'UI'), syntax)),
        what: `(${hexTag(e.tag)}) UID -> ${JSON.stringify(value.slice(0, 24))}`
      }
    }
  ]
]

const TOTAL_WEIGHT = MUTATIONS.reduce((sum, [, weight]) => sum + weight, 0)

function pickMutation(rng: Rng): [string, Mutation] {
  let n = rng.int(TOTAL_WEIGHT)
  for (const [name, weight, mutation] of MUTATIONS) {
    if (n < weight) return [name, mutation]
    n -= weight
  }
  const [name, , mutation] = MUTATIONS[0] as (typeof MUTATIONS)[number]
  return [name, mutation]
}

/** One to three mutations of a data set in its own syntax (a deflated one gets byte-level ones only). */
export function mutateDataset(dataset: Buffer, transferSyntaxUid: string, rng: Rng): Mutated {
  const syntax = syntaxOf(transferSyntaxUid)
  const what: string[] = []
  let current = dataset
  const count = rng.pick([1, 1, 1, 2, 3])
  for (let i = 0; i < count; i++) {
    const elements = syntax.deflated ? [] : walk(current, syntax, 5_000)
    for (let attempt = 0; attempt < 4; attempt++) {
      const [name, mutation] = pickMutation(rng)
      const done = mutation(current, syntax, rng, elements)
      if (done === undefined) continue
      current = done.dataset
      what.push(`${name}: ${done.what}`)
      break
    }
  }
  return { dataset: current, transferSyntaxUid, what }
}
