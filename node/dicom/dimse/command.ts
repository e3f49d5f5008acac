/**
 * DIMSE command sets (PS3.7 6.3, 9.3, 10.3, Annex E): elements of group 0000 in implicit VR little endian,
 * whatever the transfer syntax of the presentation context, starting with their group length.
 */
import { withoutTrailingPadding } from '../padding.ts'
import { DicomProtocolError } from './errors.ts'

export const COMMAND_FIELD = {
  cStoreRq: 0x0001,
  cGetRq: 0x0010,
  cFindRq: 0x0020,
  cMoveRq: 0x0021,
  cEchoRq: 0x0030,
  nEventReportRq: 0x0100,
  nGetRq: 0x0110,
  nSetRq: 0x0120,
  nActionRq: 0x0130,
  nCreateRq: 0x0140,
  nDeleteRq: 0x0150,
  cCancelRq: 0x0fff
} as const

/** A response's command field is its request's with this bit set. */
export const RESPONSE_BIT = 0x8000

/** The requests that have a response, by command field, with the name of their operation. */
export const OPERATIONS: ReadonlyMap<number, string> = new Map([
  [COMMAND_FIELD.cStoreRq, 'C-STORE'],
  [COMMAND_FIELD.cGetRq, 'C-GET'],
  [COMMAND_FIELD.cFindRq, 'C-FIND'],
  [COMMAND_FIELD.cMoveRq, 'C-MOVE'],
  [COMMAND_FIELD.cEchoRq, 'C-ECHO'],
  [COMMAND_FIELD.nEventReportRq, 'N-EVENT-REPORT'],
  [COMMAND_FIELD.nGetRq, 'N-GET'],
  [COMMAND_FIELD.nSetRq, 'N-SET'],
  [COMMAND_FIELD.nActionRq, 'N-ACTION'],
  [COMMAND_FIELD.nCreateRq, 'N-CREATE'],
  [COMMAND_FIELD.nDeleteRq, 'N-DELETE']
])

/** CommandDataSetType when no data set follows the command; any other value means one does. */
export const NO_DATA_SET = 0x0101

/** The command elements radmesh reads and writes; others are skipped when read. */
export interface Command {
  affectedSopClassUid?: string // (0000,0002) UI
  requestedSopClassUid?: string // (0000,0003) UI
  commandField: number // (0000,0100) US
  messageId?: number // (0000,0110) US
  messageIdBeingRespondedTo?: number // (0000,0120) US
  priority?: number // (0000,0700) US
  commandDataSetType: number // (0000,0800) US
  status?: number // (0000,0900) US
  errorComment?: string // (0000,0902) LO
  affectedSopInstanceUid?: string // (0000,1000) UI
  requestedSopInstanceUid?: string // (0000,1001) UI
}

type Vr = 'UI' | 'US' | 'LO'
const ELEMENTS: ReadonlyArray<[element: number, field: keyof Command, vr: Vr]> = [
  [0x0002, 'affectedSopClassUid', 'UI'],
  [0x0003, 'requestedSopClassUid', 'UI'],
  [0x0100, 'commandField', 'US'],
  [0x0110, 'messageId', 'US'],
  [0x0120, 'messageIdBeingRespondedTo', 'US'],
  [0x0700, 'priority', 'US'],
  [0x0800, 'commandDataSetType', 'US'],
  [0x0900, 'status', 'US'],
  [0x0902, 'errorComment', 'LO'],
  [0x1000, 'affectedSopInstanceUid', 'UI'],
  [0x1001, 'requestedSopInstanceUid', 'UI']
]
const BY_ELEMENT = new Map(ELEMENTS.map(([element, field, vr]) => [element, { field, vr }]))

/** Tag (4) + value length (4): implicit VR. */
const ELEMENT_HEADER_LENGTH = 8
/** (0000,0000) UL: header and a 4-byte value. */
const GROUP_LENGTH_ELEMENT_LENGTH = 12

const hex4 = (value: number): string => value.toString(16).padStart(4, '0')

/** A command set's bytes (all the command PDVs' fragments, joined). */
export function decodeCommand (bytes: Buffer): Command {
  const bad = (why: string): DicomProtocolError => new DicomProtocolError('bad-command', `command set ${why}`)
  if (bytes.length < GROUP_LENGTH_ELEMENT_LENGTH) throw bad(`of ${bytes.length} bytes has no group length`)
  if (bytes.readUInt32LE(0) !== 0 || bytes.readUInt32LE(4) !== 4) throw bad('does not start with CommandGroupLength (0000,0000) UL')
  const groupLength = bytes.readUInt32LE(8)
  if (groupLength !== bytes.length - GROUP_LENGTH_ELEMENT_LENGTH) throw bad(`says its group is ${groupLength} bytes, ${bytes.length - GROUP_LENGTH_ELEMENT_LENGTH} follow`)
  const values: Partial<Record<keyof Command, string | number>> = {}
  let offset = GROUP_LENGTH_ELEMENT_LENGTH
  while (offset < bytes.length) {
    if (bytes.length - offset < ELEMENT_HEADER_LENGTH) throw bad(`ends inside an element header at byte ${offset}`)
    const group = bytes.readUInt16LE(offset)
    const element = bytes.readUInt16LE(offset + 2)
    const length = bytes.readUInt32LE(offset + 4)
    const start = offset + ELEMENT_HEADER_LENGTH
    if (group !== 0) throw bad(`has element (${hex4(group)},${hex4(element)}) outside group 0000`)
    if (length > bytes.length - start) throw bad(`element (0000,${hex4(element)}) of ${length} bytes overruns the command set`)
    const spec = BY_ELEMENT.get(element)
    if (spec?.vr === 'US') {
      if (length !== 2) throw bad(`element (0000,${hex4(element)}) US of ${length} bytes (2)`)
      values[spec.field] = bytes.readUInt16LE(start)
    } else if (spec !== undefined) {
      const text = bytes.toString('latin1', start, start + length)
      values[spec.field] = spec.vr === 'UI' ? withoutTrailingPadding(text) : text.trim()
    }
    offset = start + length
  }
  const { commandField, commandDataSetType } = values
  if (typeof commandField !== 'number') throw bad('has no CommandField (0000,0100)')
  if (typeof commandDataSetType !== 'number') throw bad('has no CommandDataSetType (0000,0800)')
  return { ...values, commandField, commandDataSetType } as Command
}

/**
 * A command set, group length first, elements in tag order. Texts are written as Latin-1 (UI padded with NUL,
 * LO with a space, to an even length; the caller keeps them to what their VR allows); numbers 0 to 65535.
 */
export function encodeCommand (command: Command): Buffer {
  const present: Array<[element: number, vr: Vr, value: string | number]> = []
  let length = GROUP_LENGTH_ELEMENT_LENGTH
  for (const [element, field, vr] of ELEMENTS) {
    const value = command[field]
    if (value === undefined) continue
    present.push([element, vr, value])
    length += ELEMENT_HEADER_LENGTH + (vr === 'US' ? 2 : padded(String(value).length))
  }
  const out = Buffer.alloc(length)
  out.writeUInt32LE(0, 0)
  out.writeUInt32LE(4, 4)
  out.writeUInt32LE(length - GROUP_LENGTH_ELEMENT_LENGTH, 8)
  let offset = GROUP_LENGTH_ELEMENT_LENGTH
  for (const [element, vr, value] of present) {
    out.writeUInt16LE(0, offset)
    out.writeUInt16LE(element, offset + 2)
    offset += ELEMENT_HEADER_LENGTH
    if (vr === 'US') {
      out.writeUInt32LE(2, offset - 4)
      out.writeUInt16LE(value as number, offset)
      offset += 2
      continue
    }
    const text = String(value)
    // Latin-1, so a UID read from a peer goes back byte for byte, whatever it holds.
    if (/[\u0100-\uffff]/.test(text)) throw new RangeError(`command element (0000,${hex4(element)}) has characters beyond Latin-1`)
    const valueLength = padded(text.length)
    out.writeUInt32LE(valueLength, offset - 4)
    out.write(text, offset, 'latin1')
    if (valueLength > text.length) out[offset + text.length] = vr === 'UI' ? 0 : 0x20
    offset += valueLength
  }
  return out
}

const padded = (length: number): number => length + (length % 2)
