/**
 * The association PDUs of the DICOM Upper Layer (PS3.8 9.3.2-9.3.8): A-ASSOCIATE-RQ, -AC and -RJ, A-RELEASE-RQ
 * and -RP, A-ABORT, each encoded and decoded here. A decoder takes the PDU's body (after its 6-byte header,
 * which the framing has checked) and raises DicomProtocolError on anything PS3.8 does not allow.
 */
import { withoutTrailingPadding } from '../padding.ts'
import { CONTEXT_RESULT, hex2, PDU_HEADER_LENGTH, PDU_TYPE } from './constants.ts'
import { DicomProtocolError } from './errors.ts'

const ITEM = {
  applicationContext: 0x10,
  presentationContextRq: 0x20,
  presentationContextAc: 0x21,
  abstractSyntax: 0x30,
  transferSyntax: 0x40,
  userInformation: 0x50,
  maxLength: 0x51,
  implementationClassUid: 0x52,
  roleSelection: 0x54,
  implementationVersionName: 0x55
} as const

/** Protocol version (2) + reserved (2) + called AE (16) + calling AE (16) + reserved (32). */
const ASSOCIATE_FIXED_LENGTH = 68

export interface PresentationContextProposal {
  id: number
  abstractSyntax: string
  transferSyntaxes: string[]
}
export interface PresentationContextAnswer {
  id: number
  result: number
  transferSyntax: string
}

/**
 * SCP/SCU Role Selection (PS3.7 D.3.3.4): for one SOP class, whether the association requestor may be its SCU
 * and its SCP. A C-GET SCU proposes the SCP role for the storage classes it wants its objects in.
 */
export interface RoleSelection {
  sopClassUid: string
  scu: boolean
  scp: boolean
}

interface AssociateFields {
  protocolVersion: number
  calledAeTitle: string
  callingAeTitle: string
  applicationContext: string
  /** Largest P-DATA-TF PDU (its variable field) the sender receives; 0 = no limit. */
  maxPduLength: number
  implementationClassUid: string
  implementationVersionName?: string
  /** role selection items, when the PDU has any */
  roles?: RoleSelection[]
}

export interface AssociateRq extends AssociateFields {
  presentationContexts: PresentationContextProposal[]
}
export interface AssociateAc extends AssociateFields {
  presentationContexts: PresentationContextAnswer[]
}
export interface AssociateRj {
  result: number
  source: number
  reason: number
}
export interface Abort {
  source: number
  reason: number
}

// Decoding

interface Item {
  type: number
  value: Buffer
}

/** The items of a variable field: type (1), reserved (1), length (2, big endian), value. */
function readItems(field: Buffer, what: string): Item[] {
  const items: Item[] = []
  let offset = 0
  while (offset < field.length) {
    if (offset + 4 > field.length) throw new DicomProtocolError('truncated', `${what}: an item header is cut short`)
    const type = field[offset] as number
    const length = field.readUInt16BE(offset + 2)
    const end = offset + 4 + length
    if (end > field.length)
      throw new DicomProtocolError('truncated', `${what}: item ${hex2(type)} of ${length} bytes overruns its field`)
    items.push({ type, value: field.subarray(offset + 4, end) })
    offset = end
  }
  return items
}

/** A UID or name in an item: trailing NUL or space padding is not part of it (some implementations pad). */
const textOf = (value: Buffer): string => withoutTrailingPadding(value.toString('latin1'))
/** AE titles: leading and trailing spaces are not significant (PS3.8 9.3.2). */
const aeTitleOf = (value: Buffer): string => value.toString('latin1').replace(/^[\0 ]+|[\0 ]+$/g, '')

/** A role selection sub-item: UID length (2), UID, SCU role (1), SCP role (1). */
function decodeRole(value: Buffer, what: string): RoleSelection {
  const length = value.length >= 2 ? value.readUInt16BE(0) : -1
  if (length < 0 || value.length !== length + 4)
    throw new DicomProtocolError('bad-item', `${what}: role selection item of ${value.length} bytes`)
  const sopClassUid = textOf(value.subarray(2, 2 + length))
  return { sopClassUid, scu: value[2 + length] === 1, scp: value[3 + length] === 1 }
}

function decodeUserInformation(
  value: Buffer,
  what: string
): Pick<AssociateFields, 'maxPduLength' | 'implementationClassUid' | 'implementationVersionName' | 'roles'> {
  let maxPduLength = 0
  let implementationClassUid = ''
  let implementationVersionName: string | undefined
  const roles: RoleSelection[] = []
  // Asynchronous operations window, extended negotiation, user identity: not negotiated here, so ignored (left
  // out of the answer, they take their defaults: one operation at a time, no extended negotiation).
  for (const item of readItems(value, `${what} user information`)) {
    if (item.type === ITEM.roleSelection) {
      roles.push(decodeRole(item.value, what))
    } else if (item.type === ITEM.maxLength) {
      if (item.value.length !== 4)
        throw new DicomProtocolError('bad-item', `${what}: maximum length item of ${item.value.length} bytes (4)`)
      maxPduLength = item.value.readUInt32BE(0)
    } else if (item.type === ITEM.implementationClassUid) {
      implementationClassUid = textOf(item.value)
    } else if (item.type === ITEM.implementationVersionName) {
      implementationVersionName = textOf(item.value)
    }
  }
  return {
    maxPduLength,
    implementationClassUid,
    ...(implementationVersionName === undefined ? {} : { implementationVersionName }),
    ...(roles.length === 0 ? {} : { roles })
  }
}

/** What A-ASSOCIATE-RQ and -AC share; `contextItems` collects the presentation context items of the PDU's kind. */
function decodeAssociate(body: Buffer, contextType: number, what: string, contextItems: Item[]): AssociateFields {
  if (body.length < ASSOCIATE_FIXED_LENGTH)
    throw new DicomProtocolError('truncated', `${what} of ${body.length} bytes (at least ${ASSOCIATE_FIXED_LENGTH})`)
  let applicationContext: string | undefined
  let user: ReturnType<typeof decodeUserInformation> | undefined
  for (const item of readItems(body.subarray(ASSOCIATE_FIXED_LENGTH), what)) {
    if (item.type === ITEM.applicationContext) {
      if (applicationContext !== undefined)
        throw new DicomProtocolError('bad-item', `${what} has two application context items`)
      applicationContext = textOf(item.value)
    } else if (item.type === contextType) {
      contextItems.push(item)
    } else if (item.type === ITEM.userInformation) {
      if (user !== undefined) throw new DicomProtocolError('bad-item', `${what} has two user information items`)
      user = decodeUserInformation(item.value, what)
    }
    // Items of other types are skipped, as DCMTK does: none is defined here today.
  }
  if (applicationContext === undefined)
    throw new DicomProtocolError('bad-item', `${what} has no application context item`)
  if (user === undefined) throw new DicomProtocolError('bad-item', `${what} has no user information item`)
  if (contextItems.length === 0) throw new DicomProtocolError('bad-item', `${what} has no presentation context`)
  return {
    protocolVersion: body.readUInt16BE(0),
    calledAeTitle: aeTitleOf(body.subarray(4, 20)),
    callingAeTitle: aeTitleOf(body.subarray(20, 36)),
    applicationContext,
    ...user
  }
}

/** Presentation context ids are odd, 1 to 255, and unique in a PDU (PS3.8 9.3.2.2). */
function contextIdOf(item: Item, seen: Set<number>, what: string): number {
  if (item.value.length < 4)
    throw new DicomProtocolError('truncated', `${what}: presentation context item of ${item.value.length} bytes`)
  const id = item.value[0] as number
  if (id % 2 === 0) throw new DicomProtocolError('bad-item', `${what}: presentation context id ${id} is not odd`)
  if (seen.has(id)) throw new DicomProtocolError('bad-item', `${what}: presentation context id ${id} twice`)
  seen.add(id)
  return id
}

/** The body (after the 6-byte header) of an A-ASSOCIATE-RQ. */
export function decodeAssociateRq(body: Buffer): AssociateRq {
  const what = 'A-ASSOCIATE-RQ'
  const items: Item[] = []
  const fields = decodeAssociate(body, ITEM.presentationContextRq, what, items)
  const seen = new Set<number>()
  const presentationContexts = items.map(item => {
    const id = contextIdOf(item, seen, what)
    let abstractSyntax: string | undefined
    const transferSyntaxes: string[] = []
    for (const sub of readItems(item.value.subarray(4), `${what} presentation context ${id}`)) {
      if (sub.type === ITEM.abstractSyntax) {
        if (abstractSyntax !== undefined)
          throw new DicomProtocolError('bad-item', `${what}: presentation context ${id} has two abstract syntaxes`)
        abstractSyntax = textOf(sub.value)
      } else if (sub.type === ITEM.transferSyntax) {
        transferSyntaxes.push(textOf(sub.value))
      }
    }
    if (abstractSyntax === undefined)
      throw new DicomProtocolError('bad-item', `${what}: presentation context ${id} has no abstract syntax`)
    return { id, abstractSyntax, transferSyntaxes }
  })
  return { ...fields, presentationContexts }
}

/** The body (after the 6-byte header) of an A-ASSOCIATE-AC. */
export function decodeAssociateAc(body: Buffer): AssociateAc {
  const what = 'A-ASSOCIATE-AC'
  const items: Item[] = []
  const fields = decodeAssociate(body, ITEM.presentationContextAc, what, items)
  const seen = new Set<number>()
  const presentationContexts = items.map(item => {
    const id = contextIdOf(item, seen, what)
    const result = item.value[2] as number
    // On a rejected context the transfer syntax is not significant, and may be missing.
    const transferSyntax = readItems(item.value.subarray(4), `${what} presentation context ${id}`).find(
      sub => sub.type === ITEM.transferSyntax
    )
    if (transferSyntax === undefined && result === CONTEXT_RESULT.acceptance)
      throw new DicomProtocolError('bad-item', `${what}: accepted presentation context ${id} has no transfer syntax`)
    return { id, result, transferSyntax: transferSyntax === undefined ? '' : textOf(transferSyntax.value) }
  })
  return { ...fields, presentationContexts }
}

export function decodeAssociateRj(body: Buffer): AssociateRj {
  if (body.length !== 4) throw new DicomProtocolError('bad-length', `A-ASSOCIATE-RJ of ${body.length} bytes (4)`)
  return { result: body[1] as number, source: body[2] as number, reason: body[3] as number }
}

export function decodeAbort(body: Buffer): Abort {
  if (body.length !== 4) throw new DicomProtocolError('bad-length', `A-ABORT of ${body.length} bytes (4)`)
  return { source: body[2] as number, reason: body[3] as number }
}

// Encoding

function pdu(type: number, parts: Buffer[]): Buffer {
  const header = Buffer.alloc(PDU_HEADER_LENGTH)
  header[0] = type
  header.writeUInt32BE(
    parts.reduce((sum, part) => sum + part.length, 0),
    2
  )
  return Buffer.concat([header, ...parts])
}

function item(type: number, ...parts: Buffer[]): Buffer {
  const value = Buffer.concat(parts)
  if (value.length > 0xffff) throw new RangeError(`item ${hex2(type)} of ${value.length} bytes (at most 65535)`)
  const header = Buffer.alloc(4)
  header[0] = type
  header.writeUInt16BE(value.length, 2)
  return Buffer.concat([header, value])
}

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1')

function aeTitleField(title: string): Buffer {
  if (title.length > 16) throw new RangeError(`AE title "${title}" is longer than 16 characters`)
  return ascii(title.padEnd(16, ' '))
}

function encodeAssociate(type: number, fields: AssociateFields, contexts: Buffer[]): Buffer {
  const fixed = Buffer.alloc(ASSOCIATE_FIXED_LENGTH)
  fixed.writeUInt16BE(fields.protocolVersion, 0)
  aeTitleField(fields.calledAeTitle).copy(fixed, 4)
  aeTitleField(fields.callingAeTitle).copy(fixed, 20)
  const maxLength = Buffer.alloc(4)
  maxLength.writeUInt32BE(fields.maxPduLength)
  const user = [
    item(ITEM.maxLength, maxLength),
    item(ITEM.implementationClassUid, ascii(fields.implementationClassUid))
  ]
  for (const role of fields.roles ?? []) {
    const uid = ascii(role.sopClassUid)
    const length = Buffer.alloc(2)
    length.writeUInt16BE(uid.length)
    user.push(item(ITEM.roleSelection, length, uid, Buffer.from([role.scu ? 1 : 0, role.scp ? 1 : 0])))
  }
  if (fields.implementationVersionName !== undefined)
    user.push(item(ITEM.implementationVersionName, ascii(fields.implementationVersionName)))
  return pdu(type, [
    fixed,
    item(ITEM.applicationContext, ascii(fields.applicationContext)),
    ...contexts,
    item(ITEM.userInformation, ...user)
  ])
}

export function encodeAssociateRq(rq: AssociateRq): Buffer {
  return encodeAssociate(
    PDU_TYPE.associateRq,
    rq,
    rq.presentationContexts.map(context =>
      item(
        ITEM.presentationContextRq,
        Buffer.from([context.id, 0, 0, 0]),
        item(ITEM.abstractSyntax, ascii(context.abstractSyntax)),
        ...context.transferSyntaxes.map(uid => item(ITEM.transferSyntax, ascii(uid)))
      )
    )
  )
}

export function encodeAssociateAc(ac: AssociateAc): Buffer {
  return encodeAssociate(
    PDU_TYPE.associateAc,
    ac,
    ac.presentationContexts.map(context =>
      item(
        ITEM.presentationContextAc,
        Buffer.from([context.id, 0, context.result, 0]),
        item(ITEM.transferSyntax, ascii(context.transferSyntax))
      )
    )
  )
}

export function encodeAssociateRj({ result, source, reason }: AssociateRj): Buffer {
  return pdu(PDU_TYPE.associateRj, [Buffer.from([0, result, source, reason])])
}

export const encodeReleaseRq = (): Buffer => pdu(PDU_TYPE.releaseRq, [Buffer.alloc(4)])
export const encodeReleaseRp = (): Buffer => pdu(PDU_TYPE.releaseRp, [Buffer.alloc(4)])

export function encodeAbort({ source, reason }: Abort): Buffer {
  return pdu(PDU_TYPE.abort, [Buffer.from([0, 0, source, reason])])
}
