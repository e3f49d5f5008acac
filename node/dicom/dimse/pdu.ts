/**
 * The DICOM Upper Layer protocol (PS3.8 9.3): PDU framing, P-DATA-TF presentation data values, and the
 * association, release and abort PDUs.
 *
 * `PduReader` frames the bytes as they come off the socket. It copies nothing of a P-DATA-TF: each PDV
 * fragment is handed on as slices of the received Buffers (a fragment cut by a TCP read comes as two or more
 * slices). It keeps at most a 6-byte header and, for the small PDUs other than P-DATA-TF, one body, and checks
 * each PDU header (type, length limit) before it keeps any of the body.
 */
import { withoutTrailingPadding } from '../padding.ts'
import { DicomProtocolError } from './errors.ts'

export const PDU_TYPE = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pDataTf: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07
} as const

/** PDU header: type (1), reserved (1), length of the rest (4, big endian). */
export const PDU_HEADER_LENGTH = 6
/** PDV item header: item length (4, big endian, counting what follows), presentation context id (1), message control header (1). */
export const PDV_HEADER_LENGTH = 6

/** Message control header bits (PS3.8 E.2): set = command (else data set); set = last fragment. */
export const PDV_COMMAND = 0x01
export const PDV_LAST = 0x02

/** The one application context name of DICOM (PS3.7 A.2.1). */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1'

/** Presentation context results in an A-ASSOCIATE-AC (PS3.8 9.3.3.2). */
export const CONTEXT_RESULT = {
  acceptance: 0,
  userRejection: 1,
  noReason: 2,
  abstractSyntaxNotSupported: 3,
  transferSyntaxesNotSupported: 4
} as const

/** A-ASSOCIATE-RJ result and source (PS3.8 9.3.4). */
export const REJECT_RESULT = { permanent: 1, transient: 2 } as const
export const REJECT_SOURCE = { serviceUser: 1, serviceProviderAcse: 2, serviceProviderPresentation: 3 } as const
/**
 * A-ASSOCIATE-RJ reasons; their meaning depends on the source (service user: the first four; ACSE provider:
 * protocol version; presentation provider: the last two).
 */
export const REJECT_REASON = {
  noReason: 1,
  applicationContextNotSupported: 2,
  callingAeNotRecognized: 3,
  calledAeNotRecognized: 7,
  protocolVersionNotSupported: 2,
  temporaryCongestion: 1,
  localLimitExceeded: 2
} as const

/** A-ABORT source and, for the service provider, reason (PS3.8 9.3.8). */
export const ABORT_SOURCE = { serviceUser: 0, serviceProvider: 2 } as const
export const ABORT_REASON = {
  notSpecified: 0,
  unrecognizedPdu: 1,
  unexpectedPdu: 2,
  unrecognizedPduParameter: 4,
  unexpectedPduParameter: 5,
  invalidPduParameter: 6
} as const

const ITEM = {
  applicationContext: 0x10,
  presentationContextRq: 0x20,
  presentationContextAc: 0x21,
  abstractSyntax: 0x30,
  transferSyntax: 0x40,
  userInformation: 0x50,
  maxLength: 0x51,
  implementationClassUid: 0x52,
  implementationVersionName: 0x55
} as const

/** Protocol version (2) + reserved (2) + called AE (16) + calling AE (16) + reserved (32). */
const ASSOCIATE_FIXED_LENGTH = 68
/** Each of these PDUs has a 4-byte body. */
const FIXED_LENGTHS = new Map<number, number>([[PDU_TYPE.associateRj, 4], [PDU_TYPE.releaseRq, 4], [PDU_TYPE.releaseRp, 4], [PDU_TYPE.abort, 4]])

export const hex2 = (value: number): string => `0x${value.toString(16).padStart(2, '0')}`

export interface PresentationContextProposal { id: number, abstractSyntax: string, transferSyntaxes: string[] }
export interface PresentationContextAnswer { id: number, result: number, transferSyntax: string }

interface AssociateFields {
  protocolVersion: number
  calledAeTitle: string
  callingAeTitle: string
  applicationContext: string
  /** Largest P-DATA-TF PDU (its variable field) the sender receives; 0 = no limit. */
  maxPduLength: number
  implementationClassUid: string
  implementationVersionName?: string
}

export interface AssociateRq extends AssociateFields { presentationContexts: PresentationContextProposal[] }
export interface AssociateAc extends AssociateFields { presentationContexts: PresentationContextAnswer[] }
export interface AssociateRj { result: number, source: number, reason: number }
export interface Abort { source: number, reason: number }

// Decoding

interface Item { type: number, value: Buffer }

/** The items of a variable field: type (1), reserved (1), length (2, big endian), value. */
function readItems (field: Buffer, what: string): Item[] {
  const items: Item[] = []
  let offset = 0
  while (offset < field.length) {
    if (offset + 4 > field.length) throw new DicomProtocolError('truncated', `${what}: an item header is cut short`)
    const type = field[offset] as number
    const length = field.readUInt16BE(offset + 2)
    const end = offset + 4 + length
    if (end > field.length) throw new DicomProtocolError('truncated', `${what}: item ${hex2(type)} of ${length} bytes overruns its field`)
    items.push({ type, value: field.subarray(offset + 4, end) })
    offset = end
  }
  return items
}

/** A UID or name in an item: trailing NUL or space padding is not part of it (some implementations pad). */
const textOf = (value: Buffer): string => withoutTrailingPadding(value.toString('latin1'))
/** AE titles: leading and trailing spaces are not significant (PS3.8 9.3.2). */
const aeTitleOf = (value: Buffer): string => value.toString('latin1').replace(/^[\0 ]+|[\0 ]+$/g, '')

function decodeUserInformation (value: Buffer, what: string): Pick<AssociateFields, 'maxPduLength' | 'implementationClassUid' | 'implementationVersionName'> {
  let maxPduLength = 0
  let implementationClassUid = ''
  let implementationVersionName: string | undefined
  // Asynchronous operations window, role selection, extended negotiation, user identity: not negotiated here,
  // so ignored (left out of the answer, they take their defaults: one operation at a time, the usual roles).
  for (const item of readItems(value, `${what} user information`)) {
    if (item.type === ITEM.maxLength) {
      if (item.value.length !== 4) throw new DicomProtocolError('bad-item', `${what}: maximum length item of ${item.value.length} bytes (4)`)
      maxPduLength = item.value.readUInt32BE(0)
    } else if (item.type === ITEM.implementationClassUid) {
      implementationClassUid = textOf(item.value)
    } else if (item.type === ITEM.implementationVersionName) {
      implementationVersionName = textOf(item.value)
    }
  }
  return implementationVersionName === undefined
    ? { maxPduLength, implementationClassUid }
    : { maxPduLength, implementationClassUid, implementationVersionName }
}

/** What A-ASSOCIATE-RQ and -AC share; `contextItems` collects the presentation context items of the PDU's kind. */
function decodeAssociate (body: Buffer, contextType: number, what: string, contextItems: Item[]): AssociateFields {
  if (body.length < ASSOCIATE_FIXED_LENGTH) throw new DicomProtocolError('truncated', `${what} of ${body.length} bytes (at least ${ASSOCIATE_FIXED_LENGTH})`)
  let applicationContext: string | undefined
  let user: ReturnType<typeof decodeUserInformation> | undefined
  for (const item of readItems(body.subarray(ASSOCIATE_FIXED_LENGTH), what)) {
    if (item.type === ITEM.applicationContext) {
      if (applicationContext !== undefined) throw new DicomProtocolError('bad-item', `${what} has two application context items`)
      applicationContext = textOf(item.value)
    } else if (item.type === contextType) {
      contextItems.push(item)
    } else if (item.type === ITEM.userInformation) {
      if (user !== undefined) throw new DicomProtocolError('bad-item', `${what} has two user information items`)
      user = decodeUserInformation(item.value, what)
    }
    // Items of other types are skipped, as DCMTK does: none is defined here today.
  }
  if (applicationContext === undefined) throw new DicomProtocolError('bad-item', `${what} has no application context item`)
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
function contextIdOf (item: Item, seen: Set<number>, what: string): number {
  if (item.value.length < 4) throw new DicomProtocolError('truncated', `${what}: presentation context item of ${item.value.length} bytes`)
  const id = item.value[0] as number
  if (id % 2 === 0) throw new DicomProtocolError('bad-item', `${what}: presentation context id ${id} is not odd`)
  if (seen.has(id)) throw new DicomProtocolError('bad-item', `${what}: presentation context id ${id} twice`)
  seen.add(id)
  return id
}

/** The body (after the 6-byte header) of an A-ASSOCIATE-RQ. */
export function decodeAssociateRq (body: Buffer): AssociateRq {
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
        if (abstractSyntax !== undefined) throw new DicomProtocolError('bad-item', `${what}: presentation context ${id} has two abstract syntaxes`)
        abstractSyntax = textOf(sub.value)
      } else if (sub.type === ITEM.transferSyntax) {
        transferSyntaxes.push(textOf(sub.value))
      }
    }
    if (abstractSyntax === undefined) throw new DicomProtocolError('bad-item', `${what}: presentation context ${id} has no abstract syntax`)
    return { id, abstractSyntax, transferSyntaxes }
  })
  return { ...fields, presentationContexts }
}

/** The body (after the 6-byte header) of an A-ASSOCIATE-AC. */
export function decodeAssociateAc (body: Buffer): AssociateAc {
  const what = 'A-ASSOCIATE-AC'
  const items: Item[] = []
  const fields = decodeAssociate(body, ITEM.presentationContextAc, what, items)
  const seen = new Set<number>()
  const presentationContexts = items.map(item => {
    const id = contextIdOf(item, seen, what)
    const result = item.value[2] as number
    // On a rejected context the transfer syntax is not significant, and may be missing.
    const transferSyntax = readItems(item.value.subarray(4), `${what} presentation context ${id}`).find(sub => sub.type === ITEM.transferSyntax)
    if (transferSyntax === undefined && result === CONTEXT_RESULT.acceptance) throw new DicomProtocolError('bad-item', `${what}: accepted presentation context ${id} has no transfer syntax`)
    return { id, result, transferSyntax: transferSyntax === undefined ? '' : textOf(transferSyntax.value) }
  })
  return { ...fields, presentationContexts }
}

export function decodeAssociateRj (body: Buffer): AssociateRj {
  if (body.length !== 4) throw new DicomProtocolError('bad-length', `A-ASSOCIATE-RJ of ${body.length} bytes (4)`)
  return { result: body[1] as number, source: body[2] as number, reason: body[3] as number }
}

export function decodeAbort (body: Buffer): Abort {
  if (body.length !== 4) throw new DicomProtocolError('bad-length', `A-ABORT of ${body.length} bytes (4)`)
  return { source: body[2] as number, reason: body[3] as number }
}

// Encoding

function pdu (type: number, parts: Buffer[]): Buffer {
  const header = Buffer.alloc(PDU_HEADER_LENGTH)
  header[0] = type
  header.writeUInt32BE(parts.reduce((sum, part) => sum + part.length, 0), 2)
  return Buffer.concat([header, ...parts])
}

function item (type: number, ...parts: Buffer[]): Buffer {
  const value = Buffer.concat(parts)
  if (value.length > 0xffff) throw new RangeError(`item ${hex2(type)} of ${value.length} bytes (at most 65535)`)
  const header = Buffer.alloc(4)
  header[0] = type
  header.writeUInt16BE(value.length, 2)
  return Buffer.concat([header, value])
}

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1')

function aeTitleField (title: string): Buffer {
  if (title.length > 16) throw new RangeError(`AE title "${title}" is longer than 16 characters`)
  return ascii(title.padEnd(16, ' '))
}

function encodeAssociate (type: number, fields: AssociateFields, contexts: Buffer[]): Buffer {
  const fixed = Buffer.alloc(ASSOCIATE_FIXED_LENGTH)
  fixed.writeUInt16BE(fields.protocolVersion, 0)
  aeTitleField(fields.calledAeTitle).copy(fixed, 4)
  aeTitleField(fields.callingAeTitle).copy(fixed, 20)
  const maxLength = Buffer.alloc(4)
  maxLength.writeUInt32BE(fields.maxPduLength)
  const user = [item(ITEM.maxLength, maxLength), item(ITEM.implementationClassUid, ascii(fields.implementationClassUid))]
  if (fields.implementationVersionName !== undefined) user.push(item(ITEM.implementationVersionName, ascii(fields.implementationVersionName)))
  return pdu(type, [fixed, item(ITEM.applicationContext, ascii(fields.applicationContext)), ...contexts, item(ITEM.userInformation, ...user)])
}

export function encodeAssociateRq (rq: AssociateRq): Buffer {
  return encodeAssociate(PDU_TYPE.associateRq, rq, rq.presentationContexts.map(context => item(ITEM.presentationContextRq,
    Buffer.from([context.id, 0, 0, 0]),
    item(ITEM.abstractSyntax, ascii(context.abstractSyntax)),
    ...context.transferSyntaxes.map(uid => item(ITEM.transferSyntax, ascii(uid))))))
}

export function encodeAssociateAc (ac: AssociateAc): Buffer {
  return encodeAssociate(PDU_TYPE.associateAc, ac, ac.presentationContexts.map(context => item(ITEM.presentationContextAc,
    Buffer.from([context.id, 0, context.result, 0]),
    item(ITEM.transferSyntax, ascii(context.transferSyntax)))))
}

export function encodeAssociateRj ({ result, source, reason }: AssociateRj): Buffer {
  return pdu(PDU_TYPE.associateRj, [Buffer.from([0, result, source, reason])])
}

export const encodeReleaseRq = (): Buffer => pdu(PDU_TYPE.releaseRq, [Buffer.alloc(4)])
export const encodeReleaseRp = (): Buffer => pdu(PDU_TYPE.releaseRp, [Buffer.alloc(4)])

export function encodeAbort ({ source, reason }: Abort): Buffer {
  return pdu(PDU_TYPE.abort, [Buffer.from([0, 0, source, reason])])
}

/**
 * A command or data set as P-DATA-TF PDUs of one PDV each, none longer than `maxPduLength` (the peer's
 * maximum length received, 0 = no limit), the last PDV flagged last. One Buffer, for one socket write.
 */
export function encodePDataTf (contextId: number, command: boolean, value: Uint8Array, maxPduLength: number): Buffer {
  if (maxPduLength !== 0 && maxPduLength <= PDV_HEADER_LENGTH) throw new RangeError(`a maximum PDU length of ${maxPduLength} leaves no room for a PDV`)
  const fragmentMax = maxPduLength === 0 ? Math.max(1, value.length) : maxPduLength - PDV_HEADER_LENGTH
  const count = Math.max(1, Math.ceil(value.length / fragmentMax))
  const out = Buffer.allocUnsafe(value.length + count * (PDU_HEADER_LENGTH + PDV_HEADER_LENGTH))
  let offset = 0
  for (let i = 0; i < count; i++) {
    const start = i * fragmentMax
    const length = Math.min(value.length - start, fragmentMax)
    out[offset] = PDU_TYPE.pDataTf
    out[offset + 1] = 0
    out.writeUInt32BE(PDV_HEADER_LENGTH + length, offset + 2)
    out.writeUInt32BE(2 + length, offset + 6)
    out[offset + 10] = contextId
    out[offset + 11] = (command ? PDV_COMMAND : 0) | (i === count - 1 ? PDV_LAST : 0)
    out.set(value.subarray(start, start + length), offset + 12)
    offset += PDU_HEADER_LENGTH + PDV_HEADER_LENGTH + length
  }
  return out
}

// Framing

export interface PduSink {
  /** Each PDU header, before any of the body is read: throw a DicomProtocolError to refuse the PDU. */
  pduHeader (type: number, length: number): void
  /** A whole PDU other than P-DATA-TF (its body, after the header). */
  pdu (type: number, body: Buffer): void
  /**
   * Part of a PDV's fragment, a slice of the received bytes (not a copy: keep it, never write to it); `end` on
   * the PDV's last part. Every PDV makes at least one call, an empty fragment one call with an empty part.
   */
  pdv (contextId: number, control: number, part: Buffer, end: boolean): void
}

/** Largest length field accepted: of a P-DATA-TF, and of any other PDU. */
export interface PduLimits { maxPDataLength: number, maxOtherLength: number }

const EMPTY = Buffer.alloc(0)
const HEADER = 0
const BODY = 1
const PDV_HEADER = 2
const PDV_DATA = 3

/** Frames PDUs and PDVs out of a byte stream pushed in pieces of any size. Sync; throws DicomProtocolError. */
export class PduReader {
  readonly #sink: PduSink
  readonly #limits: PduLimits
  #phase = HEADER
  #stopped = false
  readonly #header = Buffer.alloc(PDU_HEADER_LENGTH)
  #headerFill = 0
  #type = 0
  /** Bytes of the current PDU's body not read yet. */
  #pduRemaining = 0
  /** A non-P-DATA body that came in more than one piece. */
  #body: Buffer | undefined
  #bodyFill = 0
  readonly #pdvHeader = Buffer.alloc(PDV_HEADER_LENGTH)
  #pdvHeaderFill = 0
  #pdvRemaining = 0
  #contextId = 0
  #control = 0

  constructor (sink: PduSink, limits: PduLimits) {
    this.#sink = sink
    this.#limits = limits
  }

  /** True between PDUs: the stream may end here. */
  get idle (): boolean { return this.#phase === HEADER && this.#headerFill === 0 }

  /** Ignores everything pushed from now on (the connection is closing). */
  stop (): void { this.#stopped = true }

  /** The end of the stream: throws if it cuts a PDU short. */
  finish (): void {
    if (!this.idle) throw new DicomProtocolError('truncated', this.#phase === HEADER ? 'the stream ends inside a PDU header' : `the stream ends inside a PDU of type ${hex2(this.#type)}`)
  }

  push (chunk: Buffer): void {
    try {
      this.#push(chunk)
    } catch (error) {
      this.#stopped = true
      throw error
    }
  }

  #push (chunk: Buffer): void {
    const length = chunk.length
    let offset = 0
    while (offset < length && !this.#stopped) {
      if (this.#phase === PDV_DATA) {
        const n = Math.min(this.#pdvRemaining, length - offset)
        const part = chunk.subarray(offset, offset + n)
        offset += n
        this.#pdvRemaining -= n
        this.#pduRemaining -= n
        const end = this.#pdvRemaining === 0
        if (end) this.#nextPdv()
        this.#sink.pdv(this.#contextId, this.#control, part, end)
      } else if (this.#phase === PDV_HEADER) {
        const n = Math.min(PDV_HEADER_LENGTH - this.#pdvHeaderFill, length - offset)
        chunk.copy(this.#pdvHeader, this.#pdvHeaderFill, offset, offset + n)
        offset += n
        this.#pdvHeaderFill += n
        this.#pduRemaining -= n
        if (this.#pdvHeaderFill === PDV_HEADER_LENGTH) this.#startPdv()
      } else if (this.#phase === HEADER) {
        const n = Math.min(PDU_HEADER_LENGTH - this.#headerFill, length - offset)
        chunk.copy(this.#header, this.#headerFill, offset, offset + n)
        offset += n
        this.#headerFill += n
        if (this.#headerFill === PDU_HEADER_LENGTH) this.#startPdu()
      } else {
        const n = Math.min(this.#pduRemaining, length - offset)
        if (this.#body === undefined && n === this.#pduRemaining) {
          const body = chunk.subarray(offset, offset + n)
          offset += n
          this.#pduRemaining = 0
          this.#phase = HEADER
          this.#sink.pdu(this.#type, body)
        } else {
          this.#body ??= Buffer.allocUnsafe(this.#pduRemaining)
          chunk.copy(this.#body, this.#bodyFill, offset, offset + n)
          offset += n
          this.#bodyFill += n
          this.#pduRemaining -= n
          if (this.#pduRemaining === 0) {
            const body = this.#body
            this.#body = undefined
            this.#bodyFill = 0
            this.#phase = HEADER
            this.#sink.pdu(this.#type, body)
          }
        }
      }
    }
  }

  #startPdu (): void {
    this.#headerFill = 0
    const type = this.#header[0] as number
    const length = this.#header.readUInt32BE(2)
    if (type < PDU_TYPE.associateRq || type > PDU_TYPE.abort) throw new DicomProtocolError('unknown-pdu-type', `not a DICOM PDU (type ${hex2(type)})`)
    const limit = type === PDU_TYPE.pDataTf ? this.#limits.maxPDataLength : this.#limits.maxOtherLength
    if (length > limit) throw new DicomProtocolError('too-long', `PDU of ${length} bytes (type ${hex2(type)}) exceeds ${limit}`)
    const fixed = FIXED_LENGTHS.get(type)
    if (fixed !== undefined && length !== fixed) throw new DicomProtocolError('bad-length', `PDU of type ${hex2(type)} with ${length} bytes (${fixed})`)
    this.#sink.pduHeader(type, length)
    this.#type = type
    this.#pduRemaining = length
    if (type === PDU_TYPE.pDataTf) {
      if (length === 0) throw new DicomProtocolError('bad-length', 'P-DATA-TF without a PDV')
      this.#nextPdv()
    } else if (length === 0) {
      this.#sink.pdu(type, EMPTY)
    } else {
      this.#phase = BODY
    }
  }

  /** After a PDV (or a P-DATA-TF header): the next PDV header, or the next PDU. */
  #nextPdv (): void {
    if (this.#pduRemaining === 0) {
      this.#phase = HEADER
    } else if (this.#pduRemaining < PDV_HEADER_LENGTH) {
      throw new DicomProtocolError('bad-length', `P-DATA-TF ends ${this.#pduRemaining} bytes into a PDV header`)
    } else {
      this.#phase = PDV_HEADER
      this.#pdvHeaderFill = 0
    }
  }

  #startPdv (): void {
    const itemLength = this.#pdvHeader.readUInt32BE(0)
    if (itemLength < 2) throw new DicomProtocolError('bad-length', `PDV item length ${itemLength} (at least 2)`)
    const fragment = itemLength - 2
    if (fragment > this.#pduRemaining) throw new DicomProtocolError('bad-pdv', `PDV of ${itemLength} bytes is longer than the rest of its PDU (${this.#pduRemaining + 2})`)
    this.#contextId = this.#pdvHeader[4] as number
    this.#control = this.#pdvHeader[5] as number
    if (fragment === 0) {
      this.#nextPdv()
      this.#sink.pdv(this.#contextId, this.#control, EMPTY, true)
    } else {
      this.#pdvRemaining = fragment
      this.#phase = PDV_DATA
    }
  }
}
