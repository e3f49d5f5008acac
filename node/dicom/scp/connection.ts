/**
 * One TCP connection of the DICOM port, and at most one association on it: PDUs framed as they come, the
 * association negotiated (negotiation.ts), command sets gathered and decoded, each data set's PDVs handed to
 * its sink as they arrive, DIMSE messages performed one at a time in arrival order (operations.ts), and the
 * socket paused while the SCU is ahead of us or a sink asks to wait (flow.ts). Every protocol or network error
 * ends only this connection, with an A-ABORT where one is due.
 */
import type { Socket } from 'node:net'
import type { Logger } from '../../log.ts'
import { type Command, COMMAND_FIELD, encodeCommand } from '../dimse/command.ts'
import { abortFor, DicomProtocolError } from '../dimse/errors.ts'
import {
  ABORT_REASON,
  ABORT_SOURCE,
  type Abort,
  decodeAbort,
  decodeAssociateRq,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodePDataTf,
  encodeReleaseRp,
  hex2,
  PDU_TYPE,
  type PduSink,
  PduReader
} from '../dimse/pdu.ts'
import type { CallerAllowList } from '../peers.ts'
import { PAUSED_FOR_DRAIN, PAUSED_FOR_QUEUE, SocketFlow } from './flow.ts'
import {
  ASSOCIATION_TIMEOUT_MS,
  CLOSE_GRACE_MS,
  type DicomLimits,
  MAX_OTHER_PDU_LENGTH,
  MAX_PDU_LENGTH,
  type RejectionLog
} from './limits.ts'
import { MessageAssembler } from './messages.ts'
import { type Context, negotiate, type Rejection } from './negotiation.ts'
import {
  type DatasetSink,
  type Message,
  perform,
  type StoreHeader,
  type StoreOutcome,
  type StoreRequest
} from './operations.ts'
import { isQueryRetrieve, type QueryRetrieveProvider } from './query-retrieve.ts'
import { QuerySession } from './query-session.ts'

/** What the connections of one SCP share. */
export interface Shared<D> {
  /** the called AE title the SCP answers to */
  aeTitle: string
  limits: DicomLimits
  openDataset: (header: StoreHeader) => DatasetSink<D>
  onStore: (request: StoreRequest<D>) => Promise<StoreOutcome>
  /** C-FIND, C-MOVE, C-GET: answered only with one */
  queryRetrieve: QueryRetrieveProvider | undefined
  allowList: CallerAllowList
  log: Logger
  /** onStore calls still running, so stop() can wait for them */
  inFlight: Set<Promise<unknown>>
  /** associations accepted and not yet closed */
  associations: number
  rejections: RejectionLog
}

/** What the association does next, in arrival order: a DIMSE message, or the release. */
type Work<D> = Message<D> | 'release'

/** The A-ABORT for our own reasons (a timeout, an internal error). */
const PROVIDER_ABORT: Abort = { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified }

const AWAITING_ASSOCIATION = 0
const ASSOCIATED = 1
const RELEASING = 2

/** One TCP connection, at most one association. */
export class Connection<D> implements PduSink {
  readonly #socket: Socket
  readonly #shared: Shared<D>
  readonly #log: Logger
  readonly #reader: PduReader
  readonly #associationTimer: NodeJS.Timeout
  #graceTimer: NodeJS.Timeout | undefined
  readonly #flow: SocketFlow
  #state = AWAITING_ASSOCIATION
  #closing = false
  /** counted in `shared.associations` */
  #counted = false
  #callingAeTitle: string | undefined
  /** Accepted presentation contexts by id. */
  readonly #contexts = new Map<number, Context>()
  /** The SCU's maximum length received, for the PDUs we send (0 = no limit). */
  #peerMaxPduLength = 0
  readonly #messages: MessageAssembler<D>
  readonly #session: QuerySession
  readonly #queue: Array<Work<D>> = []
  #working = false
  #stored = 0
  #failed = 0

  constructor(socket: Socket, shared: Shared<D>) {
    this.#socket = socket
    this.#shared = shared
    this.#log = shared.log.child({ dicomPeer: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}` })
    this.#reader = new PduReader(this, { maxPDataLength: MAX_PDU_LENGTH, maxOtherLength: MAX_OTHER_PDU_LENGTH })
    this.#messages = new MessageAssembler({
      openDataset: shared.openDataset,
      callingAeTitle: () => this.#callingAeTitle,
      log: this.#log,
      message: message => this.#enqueue(message),
      waitForDrain: sink => this.#waitForDrain(sink)
    })
    this.#session = new QuerySession({
      socket,
      aeTitle: shared.aeTitle,
      callingAeTitle: () => this.#callingAeTitle ?? '',
      contexts: this.#contexts,
      peerMaxPduLength: () => this.#peerMaxPduLength,
      log: this.#log
    })
    this.#flow = new SocketFlow(socket, shared.limits.pduTimeoutMs, {
      // Inside a PDU, a command or a data set: the SCU owes us bytes.
      midway: () => !this.#reader.idle || this.#messages.midway,
      stalled: ms => {
        const where = this.#reader.idle ? 'DIMSE message' : 'PDU'
        this.#fail(`no byte for ${ms / 1000} s in the middle of a ${where}`, PROVIDER_ABORT)
      }
    })
    this.#associationTimer = setTimeout(() => {
      this.#fail('no association request in time')
    }, ASSOCIATION_TIMEOUT_MS)
    this.#associationTimer.unref()
    socket.setNoDelay(true)
    const idleMs = shared.limits.idleTimeoutMs
    socket.setTimeout(idleMs, () => {
      this.#fail(`no traffic for ${idleMs / 1000} s`, PROVIDER_ABORT)
    })
    socket.on('data', (chunk: Buffer) => {
      if (this.#closing) return
      try {
        this.#reader.push(chunk)
      } catch (error) {
        this.#protocolError(error)
      }
      this.#flow.watch()
    })
    socket.on('end', () => {
      if (this.#closing) return
      if (!this.#reader.idle) this.#fail('the peer closed the connection in the middle of a PDU')
      else if (this.#state !== AWAITING_ASSOCIATION)
        this.#fail('the peer closed the connection without releasing the association')
      else this.#close()
    })
    socket.on('error', (error: Error) => {
      this.#fail(error.message)
    })
    socket.on('close', () => {
      clearTimeout(this.#associationTimer)
      clearTimeout(this.#graceTimer)
      this.#stopReading()
      this.#session.close()
      if (this.#counted) {
        this.#counted = false
        this.#shared.associations--
      }
      if (this.#callingAeTitle !== undefined) {
        this.#log.info(
          { callingAeTitle: this.#callingAeTitle, stored: this.#stored, failed: this.#failed },
          'DICOM association closed'
        )
      }
    })
  }

  // PduSink: called by the reader, synchronously, as bytes come. A DicomProtocolError thrown here ends the connection.

  pduHeader(type: number, _length: number): void {
    if (type === PDU_TYPE.abort) return
    if (this.#state === AWAITING_ASSOCIATION) {
      if (type !== PDU_TYPE.associateRq)
        throw new DicomProtocolError('unexpected-pdu', `PDU type ${hex2(type)} before an A-ASSOCIATE-RQ`)
    } else if (type === PDU_TYPE.associateRq) {
      throw new DicomProtocolError('unexpected-pdu', 'a second A-ASSOCIATE-RQ')
    } else if (this.#state === RELEASING) {
      throw new DicomProtocolError('unexpected-pdu', `PDU type ${hex2(type)} after the A-RELEASE-RQ`)
    } else if (type !== PDU_TYPE.pDataTf && type !== PDU_TYPE.releaseRq) {
      throw new DicomProtocolError('unexpected-pdu', `PDU type ${hex2(type)} from an SCU`)
    }
  }

  pdu(type: number, body: Buffer): void {
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

  pdv(contextId: number, control: number, part: Buffer, end: boolean): void {
    const context = this.#contexts.get(contextId)
    if (context === undefined)
      throw new DicomProtocolError('bad-pdv', `PDV on presentation context ${contextId}, which was not accepted`)
    this.#messages.pdv(context, control, part, end)
  }

  // Flow control

  #waitForDrain(sink: DatasetSink<D>): void {
    if (this.#flow.isPaused(PAUSED_FOR_DRAIN)) return
    this.#flow.pause(PAUSED_FOR_DRAIN)
    sink.drain().then(
      () => {
        this.#flow.resume(PAUSED_FOR_DRAIN)
      },
      (error: unknown) => {
        this.#fail(`the data set could not be written: ${(error as Error).message}`, PROVIDER_ABORT, error)
      }
    )
  }

  // Association

  #associate(body: Buffer): void {
    clearTimeout(this.#associationTimer)
    const rq = decodeAssociateRq(body)
    const negotiation = negotiate(rq, {
      aeTitle: this.#shared.aeTitle,
      allows: callingAeTitle => this.#shared.allowList.allows(callingAeTitle, this.#socket.remoteAddress),
      address: this.#socket.remoteAddress,
      associations: this.#shared.associations,
      maxAssociations: this.#shared.limits.maxAssociations,
      maxPduLength: MAX_PDU_LENGTH,
      queryRetrieve: this.#shared.queryRetrieve !== undefined
    })
    if ('rejected' in negotiation) {
      this.#reject(negotiation.rejected)
      return
    }
    for (const context of negotiation.contexts) this.#contexts.set(context.id, context)
    this.#peerMaxPduLength = rq.maxPduLength
    this.#socket.write(encodeAssociateAc(negotiation.accepted))
    this.#state = ASSOCIATED
    this.#counted = true
    this.#shared.associations++
    const { callingAeTitle } = rq
    this.#callingAeTitle = callingAeTitle
    this.#log.info(
      {
        callingAeTitle,
        proposed: rq.presentationContexts.length,
        accepted: this.#contexts.size,
        maxPduLength: rq.maxPduLength,
        implementationVersionName: rq.implementationVersionName
      },
      'DICOM association accepted'
    )
  }

  /** A-ASSOCIATE-RJ, logged; a `kind` of rejection a peer can repeat at will goes through the rejection log. */
  #reject({ message, fields, source, reason, kind, result }: Rejection): void {
    if (kind === undefined) this.#log.warn(fields, message)
    else this.#shared.rejections.warn(this.#log, kind, fields, message)
    this.#closeAfter(encodeAssociateRj({ result, source, reason }))
  }

  // DIMSE messages, one at a time in arrival order

  #enqueue(work: Work<D>): void {
    // A C-CANCEL, or the response to a C-STORE of a C-GET, is for the operation running: taken at once.
    if (work !== 'release' && this.#session.take(work.command)) return
    this.#queue.push(work)
    // An SCU that sends before it has its answer (none may: no asynchronous window) waits in TCP, not in memory.
    if (this.#working) this.#flow.pause(PAUSED_FOR_QUEUE)
    else void this.#work()
  }

  async #work(): Promise<void> {
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
      this.#fail(`internal error: ${(error as Error).message}`, PROVIDER_ABORT, error)
    } finally {
      this.#working = false
      this.#flow.resume(PAUSED_FOR_QUEUE)
    }
  }

  async #handle(message: Message<D>): Promise<void> {
    const { command, context, identifier } = message
    const provider = this.#shared.queryRetrieve
    if (provider !== undefined && isQueryRetrieve(context) && command.commandField !== COMMAND_FIELD.cEchoRq) {
      await this.#session.run(command, context, identifier, provider)
      return
    }
    const answer = await perform(message, {
      callingAeTitle: this.#callingAeTitle ?? '',
      log: this.#log,
      onStore: this.#shared.onStore,
      inFlight: this.#shared.inFlight
    })
    if (answer === undefined) return
    if ('abort' in answer) {
      this.#fail(answer.abort, { source: ABORT_SOURCE.serviceUser, reason: ABORT_REASON.notSpecified })
      return
    }
    if (answer.stored === true) this.#stored++
    else if (answer.stored === false) this.#failed++
    this.#send(message.context, answer.response)
  }

  /**
   * A response command, on the request's presentation context, in PDUs no longer than the SCU takes. Dropped
   * once closing.
   */
  #send(context: Context, command: Command): void {
    if (this.#closing) return
    this.#socket.write(encodePDataTf(context.id, true, encodeCommand(command), this.#peerMaxPduLength))
  }

  // Closing

  #protocolError(error: unknown): void {
    if (error instanceof DicomProtocolError)
      this.#fail(`malformed PDU stream: ${error.message}`, abortFor(error.problem))
    else this.#fail(`internal error: ${(error as Error).message}`, PROVIDER_ABORT, error)
  }

  /**
   * Ends the connection after a protocol or network error, with an A-ABORT if one is given; logs the first
   * cause only.
   */
  #fail(reason: string, abort?: Abort, error?: unknown): void {
    if (this.#closing) return
    this.#log.warn(
      { reason, callingAeTitle: this.#callingAeTitle, ...(error === undefined ? {} : { err: error }) },
      'DICOM connection closed on error'
    )
    if (abort !== undefined && this.#socket.writable) this.#closeAfter(encodeAbort(abort))
    else this.#close()
  }

  /**
   * Reads nothing more, and gives up every data set not handed to onStore yet: the one coming in and those
   * queued behind a running operation. Nothing of theirs stays referenced by the connection.
   */
  #stopReading(): void {
    this.#closing = true
    this.#reader.stop()
    this.#flow.stop()
    this.#messages.release()
    for (const work of this.#queue.splice(0)) {
      if (work !== 'release') work.sink?.release()
    }
  }

  /** Sends a last PDU and half-closes; the SCU closes then, or we do after a grace period. */
  #closeAfter(pdu: Buffer): void {
    this.#stopReading()
    this.#socket.end(pdu)
    this.#graceTimer = setTimeout(() => {
      this.#socket.destroy()
    }, CLOSE_GRACE_MS)
    this.#graceTimer.unref()
  }

  #close(): void {
    this.#stopReading()
    this.#socket.destroy()
  }
}
