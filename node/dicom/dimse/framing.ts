/**
 * PDUs on the wire (PS3.8 9.3.1, 9.3.5): P-DATA-TF encoded, and every PDU framed as it comes off the socket.
 *
 * `PduReader` copies nothing of a P-DATA-TF: each PDV fragment is handed on as slices of the received Buffers
 * (a fragment cut by a TCP read comes as two or more slices). It keeps at most a 6-byte header and, for the
 * small PDUs other than P-DATA-TF, one body, and checks each PDU header (type, length limit) before it keeps
 * any of the body.
 */
import { hex2, PDU_HEADER_LENGTH, PDU_TYPE, PDV_COMMAND, PDV_HEADER_LENGTH, PDV_LAST } from './constants.ts'
import { DicomProtocolError } from './errors.ts'

/** Each of these PDUs has a 4-byte body. */
const FIXED_LENGTHS = new Map<number, number>([
  [PDU_TYPE.associateRj, 4],
  [PDU_TYPE.releaseRq, 4],
  [PDU_TYPE.releaseRp, 4],
  [PDU_TYPE.abort, 4]
])

/**
 * A command or data set as P-DATA-TF PDUs of one PDV each, none longer than `maxPduLength` (the peer's
 * maximum length received, 0 = no limit), the last PDV flagged last unless `last` is false (a data set sent
 * in several pieces). One Buffer, for one socket write.
 */
export function encodePDataTf(
  contextId: number,
  command: boolean,
  value: Uint8Array,
  maxPduLength: number,
  last = true
): Buffer {
  if (maxPduLength !== 0 && maxPduLength <= PDV_HEADER_LENGTH)
    throw new RangeError(`a maximum PDU length of ${maxPduLength} leaves no room for a PDV`)
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
    out[offset + 11] = (command ? PDV_COMMAND : 0) | (last && i === count - 1 ? PDV_LAST : 0)
    out.set(value.subarray(start, start + length), offset + 12)
    offset += PDU_HEADER_LENGTH + PDV_HEADER_LENGTH + length
  }
  return out
}

// Framing

export interface PduSink {
  /** Each PDU header, before any of the body is read: throw a DicomProtocolError to refuse the PDU. */
  pduHeader(type: number, length: number): void
  /** A whole PDU other than P-DATA-TF (its body, after the header). */
  pdu(type: number, body: Buffer): void
  /**
   * Part of a PDV's fragment, a slice of the received bytes (not a copy: keep it, never write to it); `end` on
   * the PDV's last part. Every PDV makes at least one call, an empty fragment one call with an empty part.
   */
  pdv(contextId: number, control: number, part: Buffer, end: boolean): void
}

/** Largest length field accepted: of a P-DATA-TF, and of any other PDU. */
export interface PduLimits {
  maxPDataLength: number
  maxOtherLength: number
}

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

  constructor(sink: PduSink, limits: PduLimits) {
    this.#sink = sink
    this.#limits = limits
  }

  /** True between PDUs: the stream may end here. */
  get idle(): boolean {
    return this.#phase === HEADER && this.#headerFill === 0
  }

  /** Ignores everything pushed from now on (the connection is closing). */
  stop(): void {
    this.#stopped = true
  }

  /** The end of the stream: throws if it cuts a PDU short. */
  finish(): void {
    if (!this.idle)
      throw new DicomProtocolError(
        'truncated',
        this.#phase === HEADER
          ? 'the stream ends inside a PDU header'
          : `the stream ends inside a PDU of type ${hex2(this.#type)}`
      )
  }

  push(chunk: Buffer): void {
    try {
      this.#push(chunk)
    } catch (error) {
      this.#stopped = true
      throw error
    }
  }

  #push(chunk: Buffer): void {
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

  #startPdu(): void {
    this.#headerFill = 0
    const type = this.#header[0] as number
    const length = this.#header.readUInt32BE(2)
    if (type < PDU_TYPE.associateRq || type > PDU_TYPE.abort)
      throw new DicomProtocolError('unknown-pdu-type', `not a DICOM PDU (type ${hex2(type)})`)
    const limit = type === PDU_TYPE.pDataTf ? this.#limits.maxPDataLength : this.#limits.maxOtherLength
    if (length > limit)
      throw new DicomProtocolError('too-long', `PDU of ${length} bytes (type ${hex2(type)}) exceeds ${limit}`)
    const fixed = FIXED_LENGTHS.get(type)
    if (fixed !== undefined && length !== fixed)
      throw new DicomProtocolError('bad-length', `PDU of type ${hex2(type)} with ${length} bytes (${fixed})`)
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
  #nextPdv(): void {
    if (this.#pduRemaining === 0) {
      this.#phase = HEADER
    } else if (this.#pduRemaining < PDV_HEADER_LENGTH) {
      throw new DicomProtocolError('bad-length', `P-DATA-TF ends ${this.#pduRemaining} bytes into a PDV header`)
    } else {
      this.#phase = PDV_HEADER
      this.#pdvHeaderFill = 0
    }
  }

  #startPdv(): void {
    const itemLength = this.#pdvHeader.readUInt32BE(0)
    if (itemLength < 2) throw new DicomProtocolError('bad-length', `PDV item length ${itemLength} (at least 2)`)
    const fragment = itemLength - 2
    if (fragment > this.#pduRemaining)
      throw new DicomProtocolError(
        'bad-pdv',
        `PDV of ${itemLength} bytes is longer than the rest of its PDU (${this.#pduRemaining + 2})`
      )
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
