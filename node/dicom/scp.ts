/**
 * The DICOM port: a C-ECHO and C-STORE SCP on dcmjs-dimse, for modalities and PACS that push studies to a node.
 *
 * Every data set reaches `onStore` exactly as the SCU sent it, in the transfer syntax negotiated for its
 * presentation context: the bytes are collected through dcmjs-dimse's `createStoreWritableStream` /
 * `createDatasetFromStoreWritableStream` hooks and never parsed or re-encoded here (parsing is slow and may
 * alter bytes; the archive checks what it stores). Each presentation context is accepted with the first
 * transfer syntax the SCU proposes that radmesh can store, so an SCU never has to convert.
 *
 * dcmjs-dimse is trusted with little: a watcher on each connection checks the PDU framing before the library
 * buffers anything (unknown PDU types and oversized PDUs end the connection), and every library error ends
 * only its own connection, logged at warn.
 */
import { createServer, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import dimse from 'dcmjs-dimse'
import type { association, requests, responses } from 'dcmjs-dimse'
import type { Logger } from '../log.ts'

type Association = association.Association
type PresentationContext = association.PresentationContext
type CStoreRequest = requests.CStoreRequest

const { Scp, Dataset, log: dimseLog } = dimse
const { CEchoResponse, CStoreResponse, CFindResponse, CMoveResponse, CGetResponse, NCreateResponse, NActionResponse, NDeleteResponse, NEventReportResponse, NGetResponse, NSetResponse } = dimse.responses
const { PresentationContextResult, RejectResult, RejectSource, RejectReason } = dimse.constants

export interface StoreRequest {
  callingAeTitle: string
  sopClassUid: string
  sopInstanceUid: string
  /** The negotiated transfer syntax of the presentation context the data set came on. */
  transferSyntaxUid: string
  /** Exactly the data set bytes the SCU sent (no re-encoding, no meta header). */
  dataset: Uint8Array
}

/** status 0x0000 = Success; failures e.g. 0xA900 (data set does not match SOP class), 0xC000 (cannot understand), 0xA700 (out of resources). */
export interface StoreOutcome { status: number, errorComment?: string }

export interface DicomScpOptions {
  /** 0 = any free port. */
  port: number
  /** Default '0.0.0.0'. */
  host?: string
  /** The called AE title this SCP answers to. */
  aeTitle: string
  onStore (request: StoreRequest): Promise<StoreOutcome>
  log: Logger
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

/** Largest P-DATA-TF PDU we announce and accept (dcmjs-dimse's own receive limit; DCMTK sends at most 128 KiB). */
const MAX_PDU_LENGTH = 262_144
/** Largest PDU of any other type (an A-ASSOCIATE-RQ with 128 presentation contexts is far smaller). */
const MAX_OTHER_PDU_LENGTH = 1_048_576
/** The SCU must send its A-ASSOCIATE-RQ this soon after connecting. */
const ASSOCIATION_TIMEOUT_MS = 30_000
/** A connection with no traffic for this long is closed (covers a slow onStore too, which has no traffic). */
const IDLE_TIMEOUT_MS = 10 * 60_000
/** After a reject or a release, the SCU closes the connection; if it does not, we do after this. */
const CLOSE_GRACE_MS = 2_000

const STATUS_SUCCESS = 0x0000
const STATUS_CANNOT_UNDERSTAND = 0xc000
const STATUS_OUT_OF_RESOURCES = 0xa700
const STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
const STATUS_UNRECOGNIZED_OPERATION = 0x0211

const PDU_TYPE = { associateRq: 0x01, pDataTf: 0x04, releaseRq: 0x05, releaseRp: 0x06, abort: 0x07 } as const
const PDU_TYPES_FROM_SCU = new Set<number>(Object.values(PDU_TYPE))

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

/** Why a PDU header is not one an SCU may send at this point, or undefined when it is. */
function framingProblem (type: number, length: number, first: boolean): string | undefined {
  const hex = `0x${type.toString(16).padStart(2, '0')}`
  if (!PDU_TYPES_FROM_SCU.has(type)) return `not a PDU an SCU sends (type ${hex})`
  if (first && type !== PDU_TYPE.associateRq) return `PDU type ${hex} before an A-ASSOCIATE-RQ`
  if (!first && type === PDU_TYPE.associateRq) return 'a second A-ASSOCIATE-RQ'
  const limit = type === PDU_TYPE.pDataTf ? MAX_PDU_LENGTH : MAX_OTHER_PDU_LENGTH
  if (length > limit) return `PDU of ${length} bytes (type ${hex}) exceeds ${limit}`
  return undefined
}

interface Received { context: PresentationContext, chunks: Buffer[] }

/** One TCP connection, at most one association. */
class Connection extends Scp {
  readonly #socket: Socket
  readonly #options: DicomScpOptions
  readonly #log: Logger
  readonly #remote: string
  /** onStore calls still running, shared by all connections of one SCP, so stop() can wait for them. */
  readonly #inFlight: Set<Promise<unknown>>
  /** Data sets received and not yet answered, by the request they belong to. */
  readonly #received = new WeakMap<CStoreRequest, Received>()
  #association: Association | undefined
  #associationTimer: NodeJS.Timeout | undefined
  #closing = false
  #stored = 0
  #failed = 0

  constructor (socket: Socket, options: DicomScpOptions, log: Logger, inFlight: Set<Promise<unknown>>) {
    // Timeouts of dcmjs-dimse: connectTimeout is the socket idle timeout. Its association and PDU timeouts only
    // run on sockets it connected itself, so the association timeout is ours (below).
    super(socket, { connectTimeout: IDLE_TIMEOUT_MS, associationTimeout: IDLE_TIMEOUT_MS, pduTimeout: IDLE_TIMEOUT_MS })
    this.#socket = socket
    // Ahead of dcmjs-dimse's own 'data' listener, so a bad PDU header is caught before the library buffers the PDU.
    socket.prependListener('data', Connection.#guard(reason => { this.#fail(`malformed PDU stream: ${reason}`) }))
    this.#options = options
    this.#inFlight = inFlight
    this.#remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    this.#log = log.child({ dicomPeer: this.#remote })
    this.#associationTimer = setTimeout(() => { this.#fail('no association request in time') }, ASSOCIATION_TIMEOUT_MS)
    this.#associationTimer.unref()
    socket.setNoDelay(true)
    socket.on('close', () => {
      clearTimeout(this.#associationTimer)
      if (this.#association !== undefined) {
        this.#log.info({ callingAeTitle: this.#association.getCallingAeTitle(), stored: this.#stored, failed: this.#failed }, 'DICOM association closed')
      }
    })
    this.on('networkError', (error: Error) => { this.#fail(error.message) })
  }

  /** Called for every chunk before dcmjs-dimse sees it; a framing violation ends the connection. */
  static #guard (onViolation: (reason: string) => void): (chunk: Buffer) => void {
    const header: number[] = []
    let remaining = 0
    let first = true
    let violated = false
    return chunk => {
      let offset = 0
      while (!violated && offset < chunk.length) {
        if (remaining > 0) {
          const n = Math.min(remaining, chunk.length - offset)
          remaining -= n
          offset += n
          continue
        }
        header.push(chunk[offset++] as number)
        if (header.length < 6) continue
        const [type = 0, , b2 = 0, b3 = 0, b4 = 0, b5 = 0] = header
        header.length = 0
        const length = ((b2 << 24) >>> 0) + (b3 << 16) + (b4 << 8) + b5
        const reason = framingProblem(type, length, first)
        if (reason !== undefined) {
          violated = true
          onViolation(reason)
          return
        }
        first = false
        remaining = length
      }
    }
  }

  /** Ends the connection after a protocol or network error; logs the first cause only. */
  #fail (reason: string): void {
    if (!this.#closing) this.#log.warn({ reason, callingAeTitle: this.#association?.getCallingAeTitle() }, 'DICOM connection closed on error')
    this.#closing = true
    this.#socket.destroy()
  }

  /** Half-closes now (after what was written), closes for good after a grace period. */
  #closeSoon (): void {
    this.#closing = true
    this.#socket.end()
    setTimeout(() => { this.#socket.destroy() }, CLOSE_GRACE_MS).unref()
  }

  override associationRequested (association: Association): void {
    clearTimeout(this.#associationTimer)
    this.#association = association
    const calledAeTitle = association.getCalledAeTitle()
    const callingAeTitle = association.getCallingAeTitle()
    if (calledAeTitle !== this.#options.aeTitle.trim()) {
      this.#log.warn({ calledAeTitle, callingAeTitle, aeTitle: this.#options.aeTitle }, 'DICOM association rejected: called AE title not recognized')
      this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized)
      this.#association = undefined
      this.#closeSoon()
      return
    }
    let accepted = 0
    for (const { context } of association.getPresentationContexts()) {
      if (!isAcceptedAbstractSyntax(context.getAbstractSyntaxUid())) {
        context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported)
        continue
      }
      const transferSyntax = context.getTransferSyntaxUids().find(uid => ACCEPTED_TRANSFER_SYNTAXES.includes(uid))
      if (transferSyntax === undefined) {
        context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported)
        continue
      }
      context.setResult(PresentationContextResult.Accept, transferSyntax)
      accepted++
    }
    // One operation at a time (no asynchronous operations window): bounds what an SCU can make us buffer.
    association.setNegotiateAsyncOps(false)
    // What we announce is what we receive; dcmjs-dimse would otherwise echo the SCU's value (0 = unlimited).
    association.setMaxPduLength(MAX_PDU_LENGTH)
    this.sendAssociationAccept()
    this.#log.info({ callingAeTitle, proposed: association.getPresentationContexts().length, accepted }, 'DICOM association accepted')
  }

  override associationReleaseRequested (): void {
    this.sendAssociationReleaseResponse()
    this.#closeSoon()
  }

  override abort (source: number, reason: number): void {
    this.#log.warn({ source, reason, callingAeTitle: this.#association?.getCallingAeTitle() }, 'DICOM association aborted by the peer')
    this.#closing = true
    this.#socket.destroy()
  }

  override cEchoRequest (request: requests.CEchoRequest, callback: (response: responses.CEchoResponse) => void): void {
    const response = CEchoResponse.fromRequest(request)
    response.setStatus(STATUS_SUCCESS)
    callback(response)
  }

  /** Collects the data set's P-DATA fragments as they come; never returns false, so dcmjs-dimse never waits. */
  override createStoreWritableStream (context: PresentationContext, request: CStoreRequest): Writable {
    const chunks: Buffer[] = []
    this.#received.set(request, { context, chunks })
    return new Writable({
      highWaterMark: 1 << 30,
      write (chunk: Buffer, _encoding, callback) {
        chunks.push(chunk)
        callback()
      }
    })
  }

  /** Hands dcmjs-dimse an empty Dataset: the bytes stay in #received, unparsed. */
  override createDatasetFromStoreWritableStream (_writable: Writable, context: PresentationContext, callback: (dataset: InstanceType<typeof Dataset>) => void): void {
    callback(new Dataset({}, context.getAcceptedTransferSyntaxUid()))
  }

  override cStoreRequest (request: CStoreRequest, callback: (response: responses.CStoreResponse) => void): void {
    const received = this.#received.get(request)
    this.#received.delete(request)
    const stored = this.#store(request, received)
    this.#inFlight.add(stored)
    stored.finally(() => { this.#inFlight.delete(stored) }).then(outcome => {
      if (outcome.status === STATUS_SUCCESS) this.#stored++
      else this.#failed++
      if (this.#socket.destroyed) return
      const response = CStoreResponse.fromRequest(request)
      response.setStatus(outcome.status)
      const comment = errorCommentOf(outcome.errorComment ?? '')
      if (comment !== '') response.setErrorComment(comment)
      callback(response)
    }).catch((error: unknown) => { this.#fail(`answering C-STORE: ${(error as Error).message}`) })
  }

  async #store (request: CStoreRequest, received: Received | undefined): Promise<StoreOutcome> {
    const sopClassUid = request.getAffectedSopClassUid() ?? ''
    const sopInstanceUid = request.getAffectedSopInstanceUid() ?? ''
    const context = received?.context
    if (received === undefined || context === undefined) return { status: STATUS_CANNOT_UNDERSTAND, errorComment: 'no data set received' }
    if (context.getResult() !== PresentationContextResult.Accept || context.getAbstractSyntaxUid() !== sopClassUid) {
      this.#log.warn({ sopClassUid, sopInstanceUid, abstractSyntax: context.getAbstractSyntaxUid() }, 'C-STORE on a presentation context not accepted for its SOP class')
      return { status: STATUS_SOP_CLASS_NOT_SUPPORTED, errorComment: 'presentation context not accepted for this SOP class' }
    }
    const storeRequest: StoreRequest = {
      callingAeTitle: this.#association?.getCallingAeTitle() ?? '',
      sopClassUid,
      sopInstanceUid,
      transferSyntaxUid: context.getAcceptedTransferSyntaxUid() ?? '',
      dataset: received.chunks.length === 1 ? received.chunks[0] as Buffer : Buffer.concat(received.chunks)
    }
    received.chunks.length = 0
    try {
      const outcome = await this.#options.onStore(storeRequest)
      if (!isValidStatus(outcome?.status)) throw new Error(`onStore answered an invalid status ${String(outcome?.status)}`)
      if (outcome.status === STATUS_SUCCESS) this.#log.debug({ sopInstanceUid, bytes: storeRequest.dataset.length }, 'C-STORE stored')
      else this.#log.warn({ sopInstanceUid, status: outcome.status, errorComment: outcome.errorComment }, 'C-STORE refused')
      return outcome
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      const status = statusOfError(error)
      this.#log.warn({ sopInstanceUid, status, err: error }, 'C-STORE failed')
      return { status, errorComment: message }
    }
  }

  // Services we do not offer: answered "unrecognized operation" rather than dcmjs-dimse's default.
  #refuse<T extends { setStatus (status: number): void }> (operation: string, response: T): T {
    this.#log.warn({ operation, callingAeTitle: this.#association?.getCallingAeTitle() }, 'DIMSE operation not supported')
    response.setStatus(STATUS_UNRECOGNIZED_OPERATION)
    return response
  }

  override cFindRequest (request: requests.CFindRequest, callback: (responses: responses.CFindResponse[]) => void): void {
    callback([this.#refuse('C-FIND', CFindResponse.fromRequest(request))])
  }

  override cMoveRequest (request: requests.CMoveRequest, callback: (responses: responses.CMoveResponse[]) => void): void {
    callback([this.#refuse('C-MOVE', CMoveResponse.fromRequest(request))])
  }

  override cGetRequest (request: requests.CGetRequest, callback: (responses: responses.CGetResponse[]) => void): void {
    callback([this.#refuse('C-GET', CGetResponse.fromRequest(request))])
  }

  override nCreateRequest (request: requests.NCreateRequest, callback: (response: responses.NCreateResponse) => void): void {
    callback(this.#refuse('N-CREATE', NCreateResponse.fromRequest(request)))
  }

  override nActionRequest (request: requests.NActionRequest, callback: (response: responses.NActionResponse) => void): void {
    callback(this.#refuse('N-ACTION', NActionResponse.fromRequest(request)))
  }

  override nDeleteRequest (request: requests.NDeleteRequest, callback: (response: responses.NDeleteResponse) => void): void {
    callback(this.#refuse('N-DELETE', NDeleteResponse.fromRequest(request)))
  }

  override nEventReportRequest (request: requests.NEventReportRequest, callback: (response: responses.NEventReportResponse) => void): void {
    callback(this.#refuse('N-EVENT-REPORT', NEventReportResponse.fromRequest(request)))
  }

  override nGetRequest (request: requests.NGetRequest, callback: (response: responses.NGetResponse) => void): void {
    callback(this.#refuse('N-GET', NGetResponse.fromRequest(request)))
  }

  override nSetRequest (request: requests.NSetRequest, callback: (response: responses.NSetResponse) => void): void {
    callback(this.#refuse('N-SET', NSetResponse.fromRequest(request)))
  }

  override cCancelRequest (): void {}
}

export async function startDicomScp (options: DicomScpOptions): Promise<DicomScp> {
  // dcmjs-dimse logs every PDU at info through the global loglevel logger; we log what matters ourselves.
  dimseLog.setLevel('error')
  const log = options.log.child({ component: 'dicom-scp' })
  const sockets = new Set<Socket>()
  const inFlight = new Set<Promise<unknown>>()
  const server = createServer(socket => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
    socket.on('error', () => {}) // dcmjs-dimse reports socket errors as networkError, logged by the Connection
    try {
      new Connection(socket, options, log, inFlight)
    } catch (error) {
      log.warn({ err: error }, 'DICOM connection could not be set up')
      socket.destroy()
    }
  })
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => { reject(error) }
    server.once('error', onError)
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', onError)
      resolve()
    })
  })
  server.on('error', error => { log.warn({ err: error }, 'DICOM listener error') })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('DICOM listener has no TCP address')
  log.info({ port: address.port, aeTitle: options.aeTitle }, 'DICOM SCP listening')
  let stopped: Promise<void> | undefined
  return {
    port: address.port,
    /** Closes the listener and every connection, then waits for the onStore calls still running (their answers are dropped). */
    stop: async () => {
      stopped ??= (async () => {
        const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
        for (const socket of sockets) socket.destroy()
        await closed
        await Promise.allSettled([...inFlight])
      })()
      await stopped
    }
  }
}
