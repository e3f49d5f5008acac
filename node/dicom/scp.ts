/**
 * The DICOM port: a C-ECHO and C-STORE SCP for modalities and PACS that push studies to a node, on radmesh's
 * own DICOM Upper Layer (PS3.8, `dimse/pdu.ts`) and DIMSE command sets (PS3.7, `dimse/command.ts`) over node:net.
 *
 * Every data set reaches `onStore` exactly as the SCU sent it, in the transfer syntax negotiated for its
 * presentation context: its PDV fragments go, as slices of the TCP reads they came in (tiny ones gathered in
 * 64 KiB batches), to a sink (by default joined once at the end; the archive hashes and seals them as they
 * come), never parsed or re-encoded here (parsing is slow and may alter bytes; the archive checks what it
 * stores).
 * Each presentation context is accepted with the first transfer syntax the SCU proposes that radmesh can
 * store, so an SCU never has to convert.
 *
 * Bytes from the network are trusted with little: each PDU header is checked before any of its body is kept
 * (unknown types, PDUs out of place and oversized PDUs end the connection, with an A-ABORT), and every
 * protocol or network error ends only its own connection, logged at warn. No asynchronous operations window
 * is negotiated: an association does one operation at a time, and its C-STOREs are answered in order.
 *
 * The port needs no login, so what one peer can hold is bounded (`DicomLimits`, each a `radmesh start` option):
 * at most `maxAssociations` associations at once (past it, A-ASSOCIATE-RJ transient, local limit exceeded);
 * a data set is never held here: its sink takes it as it comes and says when to wait, and the socket is paused
 * until it may write again; a data set its association leaves unfinished is released when the association ends;
 * a PDU or DIMSE message that stops midway ends its association after `pduTimeoutMs` without a byte; and, with
 * an allow-list, only the calling AE titles it names, from their addresses, may associate.
 */
import { createServer, type Socket } from 'node:net'
import type { Logger } from '../log.ts'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uids.ts'
import { CallerAllowList, type DicomCaller } from './peers.ts'
import { type Command, COMMAND_FIELD, decodeCommand, encodeCommand, NO_DATA_SET, OPERATIONS, RESPONSE_BIT } from './dimse/command.ts'
import { DicomProtocolError, type DicomProtocolProblem } from './dimse/errors.ts'
import {
  ABORT_REASON, ABORT_SOURCE, type Abort, CONTEXT_RESULT, DICOM_APPLICATION_CONTEXT, decodeAbort, decodeAssociateRq, encodeAbort,
  encodeAssociateAc, encodeAssociateRj, encodePDataTf, encodeReleaseRp, hex2, PDU_TYPE, PDV_COMMAND, PDV_HEADER_LENGTH,
  PDV_LAST, type PduSink, PduReader, type PresentationContextAnswer, REJECT_REASON, REJECT_RESULT, REJECT_SOURCE
} from './dimse/pdu.ts'

/** What a C-STORE request says of its data set, known before the data set arrives. */
export interface StoreHeader {
  callingAeTitle: string
  /** Affected SOP Class UID ('' when the command has none: refused once the data set is in) */
  sopClassUid: string
  /** Affected SOP Instance UID ('' when the command has none) */
  sopInstanceUid: string
  /** The negotiated transfer syntax of the presentation context the data set came on. */
  transferSyntaxUid: string
}

export interface StoreRequest<D = Uint8Array> extends StoreHeader {
  /** Exactly the data set bytes the SCU sent (no re-encoding, no meta header), as the sink made them. */
  dataset: D
}

/**
 * Where a data set's bytes go as its PDVs arrive, and what `finish` makes of them for onStore. `write` is called
 * synchronously from the socket reader and must not throw; when it returns false the socket is paused until
 * `drain()` resolves (the rest of the socket read already in hand is still written). A data set that does not
 * reach onStore (its association ended first, or the request was refused before) is given up with `release()`;
 * one that does belongs to onStore from then on.
 */
export interface DatasetSink<D> {
  /** `part`: a slice of a socket read, or a batch of small fragments; the sink may keep it (we never reuse it) */
  write (part: Buffer): boolean
  drain (): Promise<void>
  finish (): D
  release (): void
}

/** status 0x0000 = Success; failures e.g. 0xA900 (data set does not match SOP class), 0xC000 (cannot understand), 0xA700 (out of resources). */
export interface StoreOutcome { status: number, errorComment?: string }

/** What one peer, or all of them, can hold of the DICOM port; see DEFAULT_DICOM_LIMITS for the reasons. */
export interface DicomLimits {
  /** associations open at once; past it, A-ASSOCIATE-RJ (transient, local limit exceeded) */
  maxAssociations: number
  /** no byte for this long inside a PDU or a DIMSE message: A-ABORT */
  pduTimeoutMs: number
  /** no traffic at all for this long between operations: A-ABORT */
  idleTimeoutMs: number
  /** calling AE titles and their addresses allowed to associate; empty: any */
  allowedCallers: readonly DicomCaller[]
}

export const DEFAULT_DICOM_LIMITS: Readonly<DicomLimits> = Object.freeze({
  // A modality or PACS opens one to a few associations to send a study; 16 leaves room for a busy site while
  // bounding what unauthenticated peers can make the node hold at once (each association buffers at most a
  // PDU, 1 MiB, and whatever its data set's sink holds).
  maxAssociations: 16,
  // An SCU sends a PDU's bytes back to back; a minute without one inside a PDU or a message is a stalled or
  // hostile peer, not a slow network (TCP would have given up or retransmitted long before).
  pduTimeoutMs: 60_000,
  // Between operations an SCU may wait for its user (a technologist picking the next series).
  idleTimeoutMs: 10 * 60_000,
  allowedCallers: Object.freeze([])
})

/** TCP connections still negotiating (no association yet) allowed besides the associations. */
const MAX_PENDING_CONNECTIONS = 32
/** Rejections of one kind logged per interval at most; the first line of the next interval counts the rest. */
const REJECTION_LOG_INTERVAL_MS = 10_000
const REJECTIONS_LOGGED_PER_INTERVAL = 5

export interface DicomScpOptions<D = Uint8Array> extends Partial<DicomLimits> {
  /** 0 = any free port. */
  port: number
  /** Default '0.0.0.0'. */
  host?: string
  /** The called AE title this SCP answers to. */
  aeTitle: string
  /**
   * Opens a sink for each data set as its command arrives, so work can start before the last PDV. Required
   * when D is not Uint8Array; by default the PDV fragments are kept and joined once at the end.
   */
  openDataset?: (header: StoreHeader) => DatasetSink<D>
  onStore (request: StoreRequest<D>): Promise<StoreOutcome>
  log: Logger
}

/** The default sink: the fragments as slices of the TCP reads they came in, joined once. */
function collectDataset (): DatasetSink<Uint8Array> {
  let parts: Buffer[] = []
  let length = 0
  return {
    write: part => {
      parts.push(part)
      length += part.length
      return true
    },
    drain: async () => {},
    finish: () => parts.length === 1 ? parts[0] as Buffer : Buffer.concat(parts, length),
    release: () => {
      parts = []
      length = 0
    }
  }
}

export interface DicomScp { port: number, stop (): Promise<void> }

/** Transfer syntaxes accepted on every presentation context, in no order of preference: the SCU's order decides. */
export const ACCEPTED_TRANSFER_SYNTAXES: readonly string[] = Object.freeze([
  '1.2.840.10008.1.2', // implicit VR little endian
  '1.2.840.10008.1.2.1', // explicit VR little endian
  '1.2.840.10008.1.2.1.99', // deflated explicit VR little endian
  '1.2.840.10008.1.2.2', // explicit VR big endian (retired, still sent by old modalities)
  '1.2.840.10008.1.2.4.50', // JPEG baseline (process 1)
  '1.2.840.10008.1.2.4.51', // JPEG extended (process 2 & 4)
  '1.2.840.10008.1.2.4.57', // JPEG lossless (process 14)
  '1.2.840.10008.1.2.4.70', // JPEG lossless, first-order prediction (process 14, SV1)
  '1.2.840.10008.1.2.4.80', // JPEG-LS lossless
  '1.2.840.10008.1.2.4.81', // JPEG-LS near-lossless
  '1.2.840.10008.1.2.4.90', // JPEG 2000 lossless
  '1.2.840.10008.1.2.4.91', // JPEG 2000
  '1.2.840.10008.1.2.5' // RLE lossless
])

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1'
const STORAGE_SOP_CLASS_ROOT = '1.2.840.10008.5.1.4.1.1.'
const DICOM_UID_ROOT = '1.2.840.10008.'
const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2'

/**
 * Largest P-DATA-TF PDU (its length field) we announce and accept. Bigger PDUs mean fewer PDV headers and
 * callbacks per data set; a 0.5 MB slice fits in one. An SCU may send smaller ones (DCMTK caps its own at 128 KiB).
 */
const MAX_PDU_LENGTH = 1_048_576
/** Largest PDU of any other type (an A-ASSOCIATE-RQ with 128 presentation contexts is far smaller). */
const MAX_OTHER_PDU_LENGTH = 65_536
/** Data set fragments shorter than this are gathered into batches of BATCH_LENGTH before they reach the sink. */
const BATCH_BELOW = 4096
const BATCH_LENGTH = 65_536
/** Largest command set (a real one is under 300 bytes); its fragments are kept until it is whole. */
const MAX_COMMAND_LENGTH = 16_384
/** The SCU must send its A-ASSOCIATE-RQ this soon after connecting. */
const ASSOCIATION_TIMEOUT_MS = 30_000
/** After a reject, a release or an abort, the SCU closes the connection; if it does not, we do after this. */
const CLOSE_GRACE_MS = 2_000

const STATUS_SUCCESS = 0x0000
const STATUS_CANNOT_UNDERSTAND = 0xc000
const STATUS_OUT_OF_RESOURCES = 0xa700
const STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
const STATUS_UNRECOGNIZED_OPERATION = 0x0211

/** Verification, every standard storage SOP class, and private (non-DICOM-root) classes an SCU may store with. */
export function isAcceptedAbstractSyntax (uid: string): boolean {
  if (uid.length === 0 || uid.length > 64 || !/^[0-9]+(\.[0-9]+)*$/.test(uid)) return false
  return uid === VERIFICATION_SOP_CLASS || uid.startsWith(STORAGE_SOP_CLASS_ROOT) || !uid.startsWith(DICOM_UID_ROOT)
}

/** An error comment (LO: at most 64 characters, no backslash, no control characters, plain ASCII here). */
function errorCommentOf (text: string): string {
  return text.replace(/[^\x20-\x5B\x5D-\x7E]/g, ' ').trim().slice(0, 64)
}

function isValidStatus (status: unknown): status is number {
  return typeof status === 'number' && Number.isInteger(status) && status >= 0 && status <= 0xffff
}

/** The failure status for an onStore that threw: out of resources when the machine is, cannot understand otherwise. */
function statusOfError (error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'ENOMEM' || code === 'EMFILE' || code === 'ENFILE'
    ? STATUS_OUT_OF_RESOURCES
    : STATUS_CANNOT_UNDERSTAND
}

/** The A-ABORT we send when a peer's bytes break the protocol. */
function abortFor (problem: DicomProtocolProblem): Abort {
  const reason = problem === 'unknown-pdu-type'
    ? ABORT_REASON.unrecognizedPdu
    : problem === 'unexpected-pdu' ? ABORT_REASON.unexpectedPdu : ABORT_REASON.invalidPduParameter
  return { source: ABORT_SOURCE.serviceProvider, reason }
}

/** An accepted presentation context. */
interface Context { id: number, abstractSyntax: string, transferSyntax: string }

/** A command whose data set is still coming; without a sink (not a C-STORE), the data set is read and dropped. */
interface Incoming<D> { command: Command, context: Context, sink: DatasetSink<D> | undefined, length: number }

/** A DIMSE message to handle; `taken` once onStore has its data set (else the sink is released after). */
interface Message<D> {
  command: Command
  context: Context
  dataset: D | undefined
  sink: DatasetSink<D> | undefined
  length: number
  taken: boolean
}

/** What the association does next, in arrival order: a DIMSE message, or the release. */
type Work<D> = Message<D> | 'release'

/** What the connections of one SCP share. */
interface Shared<D> {
  options: DicomScpOptions<D>
  limits: DicomLimits
  openDataset: (header: StoreHeader) => DatasetSink<D>
  allowList: CallerAllowList
  log: Logger
  /** onStore calls still running, so stop() can wait for them */
  inFlight: Set<Promise<unknown>>
  /** associations accepted and not yet closed */
  associations: number
  rejections: RejectionLog
}

/**
 * Rejections a peer can repeat at will (not allowed, over the limit), logged without letting it fill the log:
 * the first few of each kind per interval, then one line per interval saying how many were left out.
 */
class RejectionLog {
  readonly #windows = new Map<string, { start: number, logged: number, left: number }>()
  warn (log: Logger, kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    let window = this.#windows.get(kind)
    if (window === undefined || now - window.start >= REJECTION_LOG_INTERVAL_MS) {
      const left = window?.left ?? 0
      window = { start: now, logged: 0, left: 0 }
      this.#windows.set(kind, window)
      if (left > 0) fields = { ...fields, notLogged: left }
    }
    if (window.logged >= REJECTIONS_LOGGED_PER_INTERVAL) {
      window.left++
      return
    }
    window.logged++
    log.warn(fields, message)
  }
}

const AWAITING_ASSOCIATION = 0
const ASSOCIATED = 1
const RELEASING = 2

/** Why the socket is paused: an operation is running (the SCU sent ahead), or a sink asked to wait. */
const PAUSED_FOR_QUEUE = 1
const PAUSED_FOR_DRAIN = 2

/** One TCP connection, at most one association. */
class Connection<D> implements PduSink {
  readonly #socket: Socket
  readonly #shared: Shared<D>
  readonly #log: Logger
  readonly #reader: PduReader
  readonly #associationTimer: NodeJS.Timeout
  #graceTimer: NodeJS.Timeout | undefined
  /** runs while the connection is inside a PDU or a message and not paused by us */
  #stallTimer: NodeJS.Timeout | undefined
  #state = AWAITING_ASSOCIATION
  #closing = false
  /** counted in `shared.associations` */
  #counted = false
  #callingAeTitle: string | undefined
  /** Accepted presentation contexts by id. */
  readonly #contexts = new Map<number, Context>()
  /** The SCU's maximum length received, for the PDUs we send (0 = no limit). */
  #peerMaxPduLength = 0
  #commandParts: Buffer[] = []
  #commandLength = 0
  #commandContext: Context | undefined
  #incoming: Incoming<D> | undefined
  /** small fragments of the incoming data set, not yet written to its sink */
  #batch: Buffer | undefined
  #batchLength = 0
  readonly #queue: Array<Work<D>> = []
  #working = false
  #paused = 0
  #stored = 0
  #failed = 0

  constructor (socket: Socket, shared: Shared<D>) {
    this.#socket = socket
    this.#shared = shared
    this.#log = shared.log.child({ dicomPeer: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}` })
    this.#reader = new PduReader(this, { maxPDataLength: MAX_PDU_LENGTH, maxOtherLength: MAX_OTHER_PDU_LENGTH })
    this.#associationTimer = setTimeout(() => { this.#fail('no association request in time') }, ASSOCIATION_TIMEOUT_MS)
    this.#associationTimer.unref()
    socket.setNoDelay(true)
    const idleMs = shared.limits.idleTimeoutMs
    socket.setTimeout(idleMs, () => {
      this.#fail(`no traffic for ${idleMs / 1000} s`,
        { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified })
    })
    socket.on('data', (chunk: Buffer) => {
      if (this.#closing) return
      try {
        this.#reader.push(chunk)
      } catch (error) {
        this.#protocolError(error)
      }
      this.#watchStall()
    })
    socket.on('end', () => {
      if (this.#closing) return
      if (!this.#reader.idle) this.#fail('the peer closed the connection in the middle of a PDU')
      else if (this.#state !== AWAITING_ASSOCIATION) this.#fail('the peer closed the connection without releasing the association')
      else this.#close()
    })
    socket.on('error', (error: Error) => { this.#fail(error.message) })
    socket.on('close', () => {
      clearTimeout(this.#associationTimer)
      clearTimeout(this.#graceTimer)
      this.#stopReading()
      if (this.#counted) {
        this.#counted = false
        this.#shared.associations--
      }
      if (this.#callingAeTitle !== undefined) {
        this.#log.info({ callingAeTitle: this.#callingAeTitle, stored: this.#stored, failed: this.#failed }, 'DICOM association closed')
      }
    })
  }

  // PduSink: called by the reader, synchronously, as bytes come. A DicomProtocolError thrown here ends the connection.

  pduHeader (type: number, _length: number): void {
    if (type === PDU_TYPE.abort) return
    if (this.#state === AWAITING_ASSOCIATION) {
      if (type !== PDU_TYPE.associateRq) throw new DicomProtocolError('unexpected-pdu', `PDU type ${hex2(type)} before an A-ASSOCIATE-RQ`)
    } else if (type === PDU_TYPE.associateRq) {
      throw new DicomProtocolError('unexpected-pdu', 'a second A-ASSOCIATE-RQ')
    } else if (this.#state === RELEASING) {
      throw new DicomProtocolError('unexpected-pdu', `PDU type ${hex2(type)} after the A-RELEASE-RQ`)
    } else if (type !== PDU_TYPE.pDataTf && type !== PDU_TYPE.releaseRq) {
      throw new DicomProtocolError('unexpected-pdu', `PDU type ${hex2(type)} from an SCU`)
    }
  }

  pdu (type: number, body: Buffer): void {
    if (type === PDU_TYPE.associateRq) {
      this.#associate(body)
    } else if (type === PDU_TYPE.releaseRq) {
      this.#state = RELEASING
      this.#enqueue('release')
    } else if (type === PDU_TYPE.abort) {
      const { source, reason } = decodeAbort(body)
      this.#log.warn({ source, reason, callingAeTitle: this.#callingAeTitle }, 'DICOM association aborted by the peer')
      this.#close()
    }
  }

  pdv (contextId: number, control: number, part: Buffer, end: boolean): void {
    const context = this.#contexts.get(contextId)
    if (context === undefined) throw new DicomProtocolError('bad-pdv', `PDV on presentation context ${contextId}, which was not accepted`)
    const last = end && (control & PDV_LAST) !== 0
    if ((control & PDV_COMMAND) !== 0) {
      if (this.#incoming !== undefined) throw new DicomProtocolError('bad-pdv', 'a command PDV before the data set of the command before it ended')
      if (this.#commandContext !== undefined && this.#commandContext !== context) throw new DicomProtocolError('bad-pdv', 'one command on two presentation contexts')
      this.#commandContext = context
      this.#commandLength += part.length
      if (this.#commandLength > MAX_COMMAND_LENGTH) throw new DicomProtocolError('too-long', `command set over ${MAX_COMMAND_LENGTH} bytes`)
      this.#commandParts.push(part)
      if (last) this.#commandReceived(context)
      return
    }
    const incoming = this.#incoming
    if (incoming === undefined) throw new DicomProtocolError('bad-pdv', 'a data set PDV with no command before it')
    if (incoming.context !== context) throw new DicomProtocolError('bad-pdv', 'a data set on another presentation context than its command')
    if (part.length > 0) {
      incoming.length += part.length
      if (incoming.sink !== undefined) this.#write(incoming.sink, part)
    }
    if (!last) return
    this.#incoming = undefined
    const { command, sink, length } = incoming
    if (sink !== undefined) this.#flushBatch(sink)
    this.#enqueue({ command, context, dataset: sink?.finish(), sink, length, taken: false })
  }

  /**
   * A data set's fragment to its sink. Small fragments (an SCU may send PDVs of a byte or two) are copied into
   * one batch first, so the sink's cost per write (an object, a cipher call) is paid per 64 KiB at most.
   */
  #write (sink: DatasetSink<D>, part: Buffer): void {
    if (part.length >= BATCH_BELOW) {
      this.#flushBatch(sink)
      if (!sink.write(part)) this.#waitForDrain(sink)
      return
    }
    if (this.#batch !== undefined && this.#batchLength + part.length > BATCH_LENGTH) this.#flushBatch(sink)
    this.#batch ??= Buffer.allocUnsafe(BATCH_LENGTH)
    part.copy(this.#batch, this.#batchLength)
    this.#batchLength += part.length
  }

  /** Hands the batch to the sink, which may keep it: the next batch is a new buffer. */
  #flushBatch (sink: DatasetSink<D>): void {
    const batch = this.#batch
    if (batch === undefined || this.#batchLength === 0) return
    const length = this.#batchLength
    this.#batch = undefined
    this.#batchLength = 0
    if (!sink.write(batch.subarray(0, length))) this.#waitForDrain(sink)
  }

  #commandReceived (context: Context): void {
    const bytes = this.#commandParts.length === 1 ? this.#commandParts[0] as Buffer : Buffer.concat(this.#commandParts, this.#commandLength)
    this.#commandParts = []
    this.#commandLength = 0
    this.#commandContext = undefined
    let command: Command
    try {
      command = decodeCommand(bytes)
    } catch (error) {
      if (!(error instanceof DicomProtocolError)) throw error
      // Nothing to answer (no message id), and not worth the association: the SCU times the operation out.
      this.#log.warn({ reason: error.message, callingAeTitle: this.#callingAeTitle }, 'DIMSE command not understood, ignored')
      return
    }
    if (command.commandDataSetType === NO_DATA_SET) {
      this.#enqueue({ command, context, dataset: undefined, sink: undefined, length: 0, taken: false })
      return
    }
    // Only a C-STORE's data set is kept; any other operation's is read and dropped (none is offered here).
    const sink = command.commandField === COMMAND_FIELD.cStoreRq
      ? this.#shared.openDataset({
        callingAeTitle: this.#callingAeTitle ?? '',
        sopClassUid: command.affectedSopClassUid ?? '',
        sopInstanceUid: command.affectedSopInstanceUid ?? '',
        transferSyntaxUid: context.transferSyntax
      })
      : undefined
    this.#incoming = { command, context, sink, length: 0 }
  }

  // Flow control and timeouts

  /** Stops reading the socket for `reason` until `#resume(reason)`; our own pause does not count as a stall. */
  #pause (reason: number): void {
    if (this.#paused === 0) this.#socket.pause()
    this.#paused |= reason
    this.#watchStall()
  }

  #resume (reason: number): void {
    if ((this.#paused & reason) === 0) return
    this.#paused &= ~reason
    if (this.#paused !== 0 || this.#closing) return
    this.#socket.resume()
    this.#watchStall()
  }

  #waitForDrain (sink: DatasetSink<D>): void {
    if ((this.#paused & PAUSED_FOR_DRAIN) !== 0) return
    this.#pause(PAUSED_FOR_DRAIN)
    sink.drain().then(() => { this.#resume(PAUSED_FOR_DRAIN) }, (error: unknown) => {
      this.#fail(`the data set could not be written: ${(error as Error).message}`,
        { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified }, error)
    })
  }

  /** True inside a PDU, a command or a data set: the SCU owes us bytes. */
  get #midway (): boolean {
    return !this.#reader.idle || this.#incoming !== undefined || this.#commandParts.length > 0
  }

  /** Runs the stall timer while the SCU owes us bytes and we are reading; restarted by every read. */
  #watchStall (): void {
    if (this.#closing || this.#paused !== 0 || !this.#midway) {
      clearTimeout(this.#stallTimer)
      this.#stallTimer = undefined
      return
    }
    if (this.#stallTimer !== undefined) {
      this.#stallTimer.refresh()
      return
    }
    const ms = this.#shared.limits.pduTimeoutMs
    this.#stallTimer = setTimeout(() => {
      this.#fail(`no byte for ${ms / 1000} s in the middle of a ${this.#reader.idle ? 'DIMSE message' : 'PDU'}`,
        { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified })
    }, ms)
    this.#stallTimer.unref()
  }

  // Association

  #associate (body: Buffer): void {
    clearTimeout(this.#associationTimer)
    const rq = decodeAssociateRq(body)
    const { calledAeTitle, callingAeTitle } = rq
    const address = this.#socket.remoteAddress
    if ((rq.protocolVersion & 1) === 0) {
      this.#reject('DICOM association rejected: protocol version not supported', { callingAeTitle, protocolVersion: rq.protocolVersion },
        REJECT_SOURCE.serviceProviderAcse, REJECT_REASON.protocolVersionNotSupported)
      return
    }
    if (calledAeTitle !== this.#shared.options.aeTitle.trim()) {
      this.#reject('DICOM association rejected: called AE title not recognized',
        { calledAeTitle, callingAeTitle, aeTitle: this.#shared.options.aeTitle },
        REJECT_SOURCE.serviceUser, REJECT_REASON.calledAeNotRecognized)
      return
    }
    if (!this.#shared.allowList.allows(callingAeTitle, address)) {
      this.#reject('DICOM association rejected: calling AE title not allowed from this address',
        { callingAeTitle, address }, REJECT_SOURCE.serviceUser, REJECT_REASON.callingAeNotRecognized, 'calling-ae')
      return
    }
    if (rq.applicationContext !== DICOM_APPLICATION_CONTEXT) {
      this.#reject('DICOM association rejected: application context not supported', { callingAeTitle, applicationContext: rq.applicationContext },
        REJECT_SOURCE.serviceUser, REJECT_REASON.applicationContextNotSupported)
      return
    }
    if (rq.maxPduLength !== 0 && rq.maxPduLength <= PDV_HEADER_LENGTH) {
      this.#reject('DICOM association rejected: maximum PDU length too small', { callingAeTitle, maxPduLength: rq.maxPduLength },
        REJECT_SOURCE.serviceUser, REJECT_REASON.noReason)
      return
    }
    const { maxAssociations } = this.#shared.limits
    if (this.#shared.associations >= maxAssociations) {
      // Transient: the SCU may try again once an association ends.
      this.#reject('DICOM association rejected: too many associations', { callingAeTitle, address, maxAssociations },
        REJECT_SOURCE.serviceProviderPresentation, REJECT_REASON.localLimitExceeded, 'limit', REJECT_RESULT.transient)
      return
    }
    const answers: PresentationContextAnswer[] = rq.presentationContexts.map(({ id, abstractSyntax, transferSyntaxes }) => {
      // A rejected context's transfer syntax is not significant, but DCMTK wants the sub-item there.
      const rejected = (result: number): PresentationContextAnswer => ({ id, result, transferSyntax: transferSyntaxes[0] ?? IMPLICIT_VR_LITTLE_ENDIAN })
      if (!isAcceptedAbstractSyntax(abstractSyntax)) return rejected(CONTEXT_RESULT.abstractSyntaxNotSupported)
      const transferSyntax = transferSyntaxes.find(uid => ACCEPTED_TRANSFER_SYNTAXES.includes(uid))
      if (transferSyntax === undefined) return rejected(CONTEXT_RESULT.transferSyntaxesNotSupported)
      this.#contexts.set(id, { id, abstractSyntax, transferSyntax })
      return { id, result: CONTEXT_RESULT.acceptance, transferSyntax }
    })
    this.#peerMaxPduLength = rq.maxPduLength
    this.#socket.write(encodeAssociateAc({
      protocolVersion: 1,
      calledAeTitle,
      callingAeTitle,
      applicationContext: DICOM_APPLICATION_CONTEXT,
      presentationContexts: answers,
      // What we announce is what we accept; no asynchronous operations window, so one operation at a time.
      maxPduLength: MAX_PDU_LENGTH,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION_NAME
    }))
    this.#state = ASSOCIATED
    this.#counted = true
    this.#shared.associations++
    this.#callingAeTitle = callingAeTitle
    this.#log.info({
      callingAeTitle,
      proposed: rq.presentationContexts.length,
      accepted: this.#contexts.size,
      maxPduLength: rq.maxPduLength,
      implementationVersionName: rq.implementationVersionName
    }, 'DICOM association accepted')
  }

  /** A-ASSOCIATE-RJ, logged; a `kind` of rejection a peer can repeat at will goes through the rejection log. */
  #reject (message: string, fields: Record<string, unknown>, source: number, reason: number, kind?: string,
    result: number = REJECT_RESULT.permanent): void {
    if (kind === undefined) this.#log.warn(fields, message)
    else this.#shared.rejections.warn(this.#log, kind, fields, message)
    this.#closeAfter(encodeAssociateRj({ result, source, reason }))
  }

  // DIMSE messages, one at a time in arrival order

  #enqueue (work: Work<D>): void {
    this.#queue.push(work)
    // An SCU that sends before it has its answer (none may: no asynchronous window) waits in TCP, not in memory.
    if (this.#working) this.#pause(PAUSED_FOR_QUEUE)
    else void this.#work()
  }

  async #work (): Promise<void> {
    this.#working = true
    try {
      for (let work = this.#queue.shift(); work !== undefined && !this.#closing; work = this.#queue.shift()) {
        if (work === 'release') {
          this.#closeAfter(encodeReleaseRp())
          continue
        }
        try {
          await this.#handle(work)
        } finally {
          if (!work.taken) work.sink?.release()
        }
      }
    } catch (error) {
      this.#fail(`internal error: ${(error as Error).message}`, { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified }, error)
    } finally {
      this.#working = false
      this.#resume(PAUSED_FOR_QUEUE)
    }
  }

  async #handle (message: Message<D>): Promise<void> {
    const { command, context } = message
    const { commandField, messageId } = command
    if (commandField === COMMAND_FIELD.cCancelRq) return // nothing of ours runs long enough to cancel
    const operation = OPERATIONS.get(commandField)
    if (operation === undefined) {
      this.#fail(`unrecognized DIMSE command field 0x${commandField.toString(16).padStart(4, '0')}`, { source: ABORT_SOURCE.serviceUser, reason: ABORT_REASON.notSpecified })
      return
    }
    if (messageId === undefined) {
      this.#log.warn({ operation, callingAeTitle: this.#callingAeTitle }, 'DIMSE command not understood, ignored')
      return
    }
    const response: Command = {
      affectedSopClassUid: command.affectedSopClassUid ?? command.requestedSopClassUid ?? context.abstractSyntax,
      commandField: commandField | RESPONSE_BIT,
      messageIdBeingRespondedTo: messageId,
      commandDataSetType: NO_DATA_SET,
      status: STATUS_SUCCESS
    }
    if (commandField === COMMAND_FIELD.cEchoRq) {
      this.#send(context, response)
      return
    }
    if (commandField !== COMMAND_FIELD.cStoreRq) {
      this.#log.warn({ operation, callingAeTitle: this.#callingAeTitle }, 'DIMSE operation not supported')
      const instance = command.affectedSopInstanceUid ?? command.requestedSopInstanceUid
      this.#send(context, { ...response, status: STATUS_UNRECOGNIZED_OPERATION, ...(instance === undefined ? {} : { affectedSopInstanceUid: instance }) })
      return
    }
    const storing = this.#store(message)
    this.#shared.inFlight.add(storing)
    let outcome: StoreOutcome
    try {
      outcome = await storing
    } finally {
      this.#shared.inFlight.delete(storing)
    }
    if (outcome.status === STATUS_SUCCESS) this.#stored++
    else this.#failed++
    const comment = errorCommentOf(outcome.errorComment ?? '')
    this.#send(context, {
      ...response,
      status: outcome.status,
      ...(comment === '' ? {} : { errorComment: comment }),
      ...(command.affectedSopInstanceUid === undefined ? {} : { affectedSopInstanceUid: command.affectedSopInstanceUid })
    })
  }

  async #store (message: Message<D>): Promise<StoreOutcome> {
    const { command, context, dataset, length } = message
    const sopClassUid = command.affectedSopClassUid ?? ''
    const sopInstanceUid = command.affectedSopInstanceUid ?? ''
    if (dataset === undefined) return { status: STATUS_CANNOT_UNDERSTAND, errorComment: 'no data set received' }
    if (context.abstractSyntax !== sopClassUid) {
      this.#log.warn({ sopClassUid, sopInstanceUid, abstractSyntax: context.abstractSyntax }, 'C-STORE on a presentation context not accepted for its SOP class')
      return { status: STATUS_SOP_CLASS_NOT_SUPPORTED, errorComment: 'presentation context not accepted for this SOP class' }
    }
    if (sopInstanceUid === '') return { status: STATUS_CANNOT_UNDERSTAND, errorComment: 'no Affected SOP Instance UID' }
    const request: StoreRequest<D> = {
      callingAeTitle: this.#callingAeTitle ?? '',
      sopClassUid,
      sopInstanceUid,
      transferSyntaxUid: context.transferSyntax,
      dataset
    }
    try {
      message.taken = true
      const outcome = await this.#shared.options.onStore(request)
      if (!isValidStatus(outcome?.status)) throw new Error(`onStore answered an invalid status ${String(outcome?.status)}`)
      if (outcome.status === STATUS_SUCCESS) this.#log.debug({ sopInstanceUid, bytes: length }, 'C-STORE stored')
      else this.#log.warn({ sopInstanceUid, status: outcome.status, errorComment: outcome.errorComment }, 'C-STORE refused')
      return outcome
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      const status = statusOfError(error)
      this.#log.warn({ sopInstanceUid, status, err: error }, 'C-STORE failed')
      return { status, errorComment: message }
    }
  }

  /** A response command, on the request's presentation context, in PDUs no longer than the SCU takes. Dropped once closing. */
  #send (context: Context, command: Command): void {
    if (this.#closing) return
    this.#socket.write(encodePDataTf(context.id, true, encodeCommand(command), this.#peerMaxPduLength))
  }

  // Closing

  #protocolError (error: unknown): void {
    if (error instanceof DicomProtocolError) this.#fail(`malformed PDU stream: ${error.message}`, abortFor(error.problem))
    else this.#fail(`internal error: ${(error as Error).message}`, { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified }, error)
  }

  /** Ends the connection after a protocol or network error, with an A-ABORT if one is given; logs the first cause only. */
  #fail (reason: string, abort?: Abort, error?: unknown): void {
    if (this.#closing) return
    this.#log.warn({ reason, callingAeTitle: this.#callingAeTitle, ...(error === undefined ? {} : { err: error }) }, 'DICOM connection closed on error')
    if (abort !== undefined && this.#socket.writable) this.#closeAfter(encodeAbort(abort))
    else this.#close()
  }

  /**
   * Reads nothing more, and gives up every data set not handed to onStore yet: the one coming in and those
   * queued behind a running operation. Nothing of theirs stays referenced by the connection.
   */
  #stopReading (): void {
    this.#closing = true
    this.#reader.stop()
    clearTimeout(this.#stallTimer)
    this.#stallTimer = undefined
    this.#commandParts = []
    this.#batch = undefined
    this.#batchLength = 0
    const incoming = this.#incoming
    this.#incoming = undefined
    incoming?.sink?.release()
    for (const work of this.#queue.splice(0)) {
      if (work !== 'release') work.sink?.release()
    }
  }

  /** Sends a last PDU and half-closes; the SCU closes then, or we do after a grace period. */
  #closeAfter (pdu: Buffer): void {
    this.#stopReading()
    this.#socket.end(pdu)
    this.#graceTimer = setTimeout(() => { this.#socket.destroy() }, CLOSE_GRACE_MS)
    this.#graceTimer.unref()
  }

  #close (): void {
    this.#stopReading()
    this.#socket.destroy()
  }
}

export async function startDicomScp<D = Uint8Array> (options: DicomScpOptions<D>): Promise<DicomScp> {
  const log = options.log.child({ component: 'dicom-scp' })
  const limits: DicomLimits = {
    maxAssociations: options.maxAssociations ?? DEFAULT_DICOM_LIMITS.maxAssociations,
    pduTimeoutMs: options.pduTimeoutMs ?? DEFAULT_DICOM_LIMITS.pduTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_DICOM_LIMITS.idleTimeoutMs,
    allowedCallers: options.allowedCallers ?? DEFAULT_DICOM_LIMITS.allowedCallers
  }
  for (const key of ['maxAssociations', 'pduTimeoutMs', 'idleTimeoutMs'] as const) {
    if (!Number.isSafeInteger(limits[key]) || limits[key] <= 0) {
      throw new RangeError(`${key} must be a positive integer, not ${limits[key]}`)
    }
  }
  const allowList = new CallerAllowList(limits.allowedCallers, log)
  await allowList.start()
  const shared: Shared<D> = {
    options,
    limits,
    // Without openDataset, D is Uint8Array (see DicomScpOptions).
    openDataset: options.openDataset ?? (collectDataset as unknown as () => DatasetSink<D>),
    allowList,
    log,
    inFlight: new Set(),
    associations: 0,
    rejections: new RejectionLog()
  }
  const sockets = new Set<Socket>()
  const server = createServer({ noDelay: true }, socket => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
    try {
      new Connection(socket, shared)
    } catch (error) {
      log.warn({ err: error }, 'DICOM connection could not be set up')
      socket.destroy()
    }
  })
  // Connections past this are closed unanswered: enough for every association and a few negotiating, and no
  // more, so a flood of idle connections cannot take the node's file descriptors.
  server.maxConnections = limits.maxAssociations + MAX_PENDING_CONNECTIONS
  server.on('drop', () => {
    shared.rejections.warn(log, 'connections', { maxConnections: server.maxConnections },
      'DICOM connection dropped: too many connections')
  })
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => { reject(error) }
    server.once('error', onError)
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', onError)
      resolve()
    })
  }).catch((error: unknown) => {
    allowList.stop()
    throw error
  })
  server.on('error', error => { log.warn({ err: error }, 'DICOM listener error') })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('DICOM listener has no TCP address')
  log.info({
    port: address.port,
    aeTitle: options.aeTitle,
    maxAssociations: limits.maxAssociations,
    pduTimeoutMs: limits.pduTimeoutMs,
    allowedCallers: limits.allowedCallers.length
  }, 'DICOM SCP listening')
  let stopped: Promise<void> | undefined
  return {
    port: address.port,
    /** Closes the listener and every connection, then waits for the onStore calls still running (their answers are dropped). */
    stop: async () => {
      stopped ??= (async () => {
        allowList.stop()
        const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
        for (const socket of sockets) socket.destroy()
        await closed
        await Promise.allSettled([...shared.inFlight])
      })()
      await stopped
    }
  }
}
