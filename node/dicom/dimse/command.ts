/**
 * DIMSE command sets (PS3.7 6.3, 9.3, 10.3, Annex E): elements of group 0000 in implicit VR little endian,
 * whatever the transfer syntax of the presentation context, starting with their group length. Read by the one
 * data set reader (a command set is a data set), written by the one writer.
 */
import { IMPLICIT_LITTLE, tag, tagName } from '../dictionary.ts'
import { InvalidDicomError } from '../errors.ts'
import { withoutTrailingPadding } from '../padding.ts'
import { DatasetReader } from '../reader.ts'
import type { DatasetVisitor, ElementHeader } from '../visitor.ts'
import { type Element, writeGroup } from '../writer.ts'
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
/** CommandDataSetType written when one does (DCMTK's value). */
export const DATA_SET_PRESENT = 0x0102

/** The command elements radmesh reads and writes; others are skipped when read. */
export interface Command {
  affectedSopClassUid?: string // (0000,0002) UI
  requestedSopClassUid?: string // (0000,0003) UI
  commandField: number // (0000,0100) US
  messageId?: number // (0000,0110) US
  messageIdBeingRespondedTo?: number // (0000,0120) US
  moveDestination?: string // (0000,0600) AE
  priority?: number // (0000,0700) US
  commandDataSetType: number // (0000,0800) US
  status?: number // (0000,0900) US
  errorComment?: string // (0000,0902) LO
  affectedSopInstanceUid?: string // (0000,1000) UI
  requestedSopInstanceUid?: string // (0000,1001) UI
  remainingSubOperations?: number // (0000,1020) US
  completedSubOperations?: number // (0000,1021) US
  failedSubOperations?: number // (0000,1022) US
  warningSubOperations?: number // (0000,1023) US
  moveOriginatorAeTitle?: string // (0000,1030) AE
  moveOriginatorMessageId?: number // (0000,1031) US
}

type Vr = 'UI' | 'US' | 'LO' | 'AE'
const ELEMENTS: ReadonlyArray<[element: number, field: keyof Command, vr: Vr]> = [
  [0x0002, 'affectedSopClassUid', 'UI'],
  [0x0003, 'requestedSopClassUid', 'UI'],
  [0x0100, 'commandField', 'US'],
  [0x0110, 'messageId', 'US'],
  [0x0120, 'messageIdBeingRespondedTo', 'US'],
  [0x0600, 'moveDestination', 'AE'],
  [0x0700, 'priority', 'US'],
  [0x0800, 'commandDataSetType', 'US'],
  [0x0900, 'status', 'US'],
  [0x0902, 'errorComment', 'LO'],
  [0x1000, 'affectedSopInstanceUid', 'UI'],
  [0x1001, 'requestedSopInstanceUid', 'UI'],
  [0x1020, 'remainingSubOperations', 'US'],
  [0x1021, 'completedSubOperations', 'US'],
  [0x1022, 'failedSubOperations', 'US'],
  [0x1023, 'warningSubOperations', 'US'],
  [0x1030, 'moveOriginatorAeTitle', 'AE'],
  [0x1031, 'moveOriginatorMessageId', 'US']
]
const BY_ELEMENT = new Map(ELEMENTS.map(([element, field, vr]) => [element, { field, vr }]))

/** (0000,0000) UL: header (8) and a 4-byte value. */
const GROUP_LENGTH_ELEMENT_LENGTH = 12

const bad = (why: string): DicomProtocolError => new DicomProtocolError('bad-command', `command set ${why}`)

/**
 * Reads a command set's elements into a Command: each one of group 0000 (nothing else has a VR here), none of
 * undefined length, a US of 2 bytes; elements radmesh does not know are skipped, and they may come in any order.
 */
class CommandVisitor implements DatasetVisitor {
  readonly values: Partial<Record<keyof Command, string | number>> = {}
  /** CommandGroupLength, the first element */
  groupLength: number | undefined

  implicitVr(el: ElementHeader): string | undefined {
    if (el.tag >>> 16 !== 0) throw bad(`has element ${tagName(el.tag).toLowerCase()} outside group 0000`)
    if (el.offset === 0 && (el.tag !== 0 || el.length !== 4))
      throw bad('does not start with CommandGroupLength (0000,0000) UL')
    return el.tag === 0 ? 'UL' : BY_ELEMENT.get(el.tag & 0xffff)?.vr
  }

  element(el: ElementHeader): 'collect' | 'skip' {
    if (el.offset === 0) return 'collect'
    const spec = BY_ELEMENT.get(el.tag & 0xffff)
    if (spec?.vr === 'US' && el.length !== 2)
      throw bad(`element ${tagName(el.tag).toLowerCase()} US of ${el.length} bytes (2)`)
    return spec === undefined ? 'skip' : 'collect'
  }

  value(el: ElementHeader, bytes: Uint8Array): void {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (el.offset === 0) {
      this.groupLength = buffer.readUInt32LE(0)
      return
    }
    const spec = BY_ELEMENT.get(el.tag & 0xffff) as { field: keyof Command; vr: Vr }
    if (spec.vr === 'US') {
      this.values[spec.field] = buffer.readUInt16LE(0)
      return
    }
    const text = buffer.toString('latin1')
    this.values[spec.field] = spec.vr === 'UI' ? withoutTrailingPadding(text) : text.trim()
  }

  sequenceStart(el: ElementHeader): void {
    throw bad(`element ${tagName(el.tag).toLowerCase()} has an undefined length`)
  }

  encapsulatedStart(el: ElementHeader): void {
    this.sequenceStart(el)
  }
}

/** A command set's bytes (all the command PDVs' fragments, joined). */
export function decodeCommand(bytes: Buffer): Command {
  if (bytes.length < GROUP_LENGTH_ELEMENT_LENGTH) throw bad(`of ${bytes.length} bytes has no group length`)
  const visitor = new CommandVisitor()
  try {
    const reader = new DatasetReader(IMPLICIT_LITTLE, visitor, { ordered: false, maxDepth: 0 })
    reader.push(bytes)
    reader.end()
  } catch (error) {
    if (error instanceof InvalidDicomError) throw bad(`is not a data set: ${error.message}`)
    throw error
  }
  const { groupLength, values } = visitor
  const rest = bytes.length - GROUP_LENGTH_ELEMENT_LENGTH
  if (groupLength !== rest) throw bad(`says its group is ${groupLength} bytes, ${rest} follow`)
  const { commandField, commandDataSetType } = values
  if (typeof commandField !== 'number') throw bad('has no CommandField (0000,0100)')
  if (typeof commandDataSetType !== 'number') throw bad('has no CommandDataSetType (0000,0800)')
  return { ...values, commandField, commandDataSetType } as Command
}

/**
 * A command set, group length first, elements in tag order. Texts are written as Latin-1 (UI padded with NUL,
 * LO with a space, to an even length; the caller keeps them to what their VR allows), so a UID read from a
 * peer goes back byte for byte; numbers 0 to 65535.
 */
export function encodeCommand(command: Command): Buffer {
  const elements: Element[] = []
  for (const [element, field, vr] of ELEMENTS) {
    const value = command[field]
    if (value !== undefined)
      elements.push({ tag: tag(0x0000, element), vr, value: vr === 'US' ? value : String(value) })
  }
  return writeGroup(0x0000, elements, IMPLICIT_LITTLE)
}
