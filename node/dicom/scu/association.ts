/**
 * An association the node opens to another DICOM node, as the requestor: A-ASSOCIATE-RQ with the presentation
 * contexts (and SCP/SCU roles) asked for; then C-STOREs one at a time to a C-MOVE destination (each data set
 * streamed as it is read, its response awaited), or requests with an identifier whose responses come one or
 * many (C-FIND, C-GET, C-MOVE as SCU: query.ts, retrieve.ts), during which a C-GET's C-STORE sub-operations
 * arrive on this same association and are stored through `storage`; then A-RELEASE. Built on the same Upper
 * Layer codec as the SCP (dimse/pdu.ts).
 *
 * Whatever the peer does, the association ends: a rejection, an abort, a PDU out of place, a silence past
 * the timeouts or a closed connection fail what is waiting with a message that says which.
 */
import { connect, type Socket } from 'node:net'
import { DIMSE_STATUS } from '../dictionary.ts'
import {
  type Command,
  COMMAND_FIELD,
  DATA_SET_PRESENT,
  decodeCommand,
  NO_DATA_SET,
  RESPONSE_BIT
} from '../dimse/command.ts'
import { DicomProtocolError } from '../dimse/errors.ts'
import {
  ABORT_REASON,
  ABORT_SOURCE,
  CONTEXT_RESULT,
  DICOM_APPLICATION_CONTEXT,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  encodeAbort,
  encodeAssociateRq,
  encodeReleaseRq,
  hex2,
  PDU_TYPE,
  PDV_COMMAND,
  PDV_LAST,
  type PduSink,
  PduReader,
  type PresentationContextProposal,
  type RoleSelection
} from '../dimse/pdu.ts'
import type { DatasetSink, StoreHeader, StoreOutcome, StoreRequest } from '../scp/operations.ts'
import { MAX_OTHER_PDU_LENGTH, MAX_PDU_LENGTH } from '../scp/limits.ts'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../uids.ts'
import { sendMessage } from './send.ts'

/** Connecting and the association answer, and the release answer, must come this soon (DCMTK's ACSE timeout). */
export const ASSOCIATE_TIMEOUT_MS = 30_000
/** A C-STORE response must come this soon after its data set is sent (a PACS may take a while to commit). */
export const RESPONSE_TIMEOUT_MS = 120_000

/** Where the C-STORE sub-operations of a C-GET go: a sink per data set as it arrives, then the store. */
export interface ScuStorage<D> {
  open(header: StoreHeader): DatasetSink<D>
  store(request: StoreRequest<D>): Promise<StoreOutcome>
}

export interface ScuOptions<D = unknown> {
  host: string
  port: number
  calledAeTitle: string
  callingAeTitle: string
  contexts: PresentationContextProposal[]
  /** SCP/SCU role selection items (a C-GET SCU asks for the SCP role of the storage classes it takes) */
  roles?: RoleSelection[]
  /** the C-STORE requests the peer sends on this association (C-GET); refused without */
  storage?: ScuStorage<D>
}

/** A response: its command, and its identifier's bytes when one came (a C-FIND match, a failed UID list). */
export interface ScuResponse {
  command: Command
  dataset?: Buffer
}

/** A C-STORE request of the peer's, its data set arriving. */
interface IncomingStore<D> {
  command: Command
  contextId: number
  header: StoreHeader
  sink: DatasetSink<D> | undefined
}

/** An accepted presentation context of the association. */
export interface AcceptedContext {
  id: number
  abstractSyntax: string
  transferSyntax: string
}

export class ScuAssociation implements PduSink {
  readonly #socket: Socket
  readonly #reader: PduReader
  readonly #proposed: Map<number, PresentationContextProposal>
  readonly #storage: ScuStorage<unknown> | undefined
  #state: 'associating' | 'associated' | 'releasing' | 'closed' = 'associating'
  #failure: Error | undefined
  #waiter: { resolve: (value: ScuResponse | undefined) => void; reject: (error: Error) => void } | undefined
  /** answers that came while nothing waited (several C-FIND matches in one read) */
  readonly #answers: Array<ScuResponse | undefined> = []
  #command: Buffer[] = []
  /** the response whose data set is arriving */
  #responseWithData: { command: Command; parts: Buffer[] } | undefined
  /** the peer's C-STORE request whose data set is arriving, or being stored */
  #incoming: IncomingStore<unknown> | undefined
  #nextMessageId = 1
  /** accepted presentation contexts */
  accepted: AcceptedContext[] = []
  /** the peer's maximum length received (0 = no limit) */
  maxPduLength = 0

  private constructor(socket: Socket, options: ScuOptions<unknown>) {
    this.#socket = socket
    this.#storage = options.storage
    this.#proposed = new Map(options.contexts.map(context => [context.id, context]))
    this.#reader = new PduReader(this, { maxPDataLength: MAX_PDU_LENGTH, maxOtherLength: MAX_OTHER_PDU_LENGTH })
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#reader.push(chunk)
      } catch (error) {
        this.#fail(error as Error, true)
      }
    })
    socket.on('error', error => {
      this.#fail(error)
    })
    socket.on('close', () => {
      this.#fail(new Error('the connection closed'))
    })
  }

  /** Connects and associates; rejects with what the peer answered (a rejection names its result and reason). */
  static async open<D>(options: ScuOptions<D>): Promise<ScuAssociation> {
    const socket = connect({ host: options.host, port: options.port, noDelay: true })
    const association = new ScuAssociation(socket, options as ScuOptions<unknown>)
    socket.setTimeout(ASSOCIATE_TIMEOUT_MS, () => {
      association.#fail(new Error(`no answer within ${ASSOCIATE_TIMEOUT_MS / 1000} s`), true)
    })
    socket.once('connect', () => {
      socket.write(
        encodeAssociateRq({
          protocolVersion: 1,
          calledAeTitle: options.calledAeTitle,
          callingAeTitle: options.callingAeTitle,
          applicationContext: DICOM_APPLICATION_CONTEXT,
          presentationContexts: options.contexts,
          maxPduLength: MAX_PDU_LENGTH,
          implementationClassUid: IMPLEMENTATION_CLASS_UID,
          implementationVersionName: IMPLEMENTATION_VERSION_NAME,
          ...(options.roles === undefined || options.roles.length === 0 ? {} : { roles: options.roles })
        })
      )
    })
    await association.#wait()
    socket.setTimeout(0)
    return association
  }

  /** The accepted context for a SOP class in a transfer syntax, if any (any syntax when none is named). */
  contextFor(sopClassUid: string, transferSyntaxUid: string): AcceptedContext | undefined {
    return this.accepted.find(
      c => c.abstractSyntax === sopClassUid && (transferSyntaxUid === '' || c.transferSyntax === transferSyntaxUid)
    )
  }

  /** One C-STORE: the request, its data set as it is read, and the response. */
  async store(
    context: AcceptedContext,
    request: Omit<Command, 'commandField' | 'messageId' | 'commandDataSetType'>,
    dataset: AsyncIterable<Uint8Array>
  ): Promise<Command> {
    if (this.#state !== 'associated') throw this.#failure ?? new Error('the association is not open')
    const command: Command = {
      ...request,
      commandField: COMMAND_FIELD.cStoreRq,
      messageId: this.#nextMessageId++ & 0xffff,
      commandDataSetType: DATA_SET_PRESENT
    }
    const response = this.#wait(RESPONSE_TIMEOUT_MS)
    // Awaited below; a failure while the data set is still going out must not count as unhandled meanwhile.
    response.catch(() => {})
    try {
      await sendMessage(this.#socket, context.id, command, dataset, this.maxPduLength)
    } catch (error) {
      // A data set that cannot be read to its end leaves the association unusable: the peer waits for the rest.
      this.#fail(error as Error, true)
    }
    return ((await response) as ScuResponse).command
  }

  /**
   * A request with an identifier (C-FIND, C-GET, C-MOVE), and its responses as they come, up to and including
   * the final one (any status but Pending). `timeoutMs` bounds the wait for each response.
   */
  async *request(
    context: AcceptedContext,
    request: Omit<Command, 'messageId' | 'commandDataSetType'>,
    identifier: Buffer,
    timeoutMs = RESPONSE_TIMEOUT_MS
  ): AsyncGenerator<ScuResponse> {
    if (this.#state !== 'associated') throw this.#failure ?? new Error('the association is not open')
    const command: Command = {
      ...request,
      messageId: this.#nextMessageId++ & 0xffff,
      commandDataSetType: DATA_SET_PRESENT
    }
    await sendMessage(this.#socket, context.id, command, once(identifier), this.maxPduLength)
    for (;;) {
      const response = (await this.#wait(timeoutMs)) as ScuResponse | undefined
      if (response === undefined) throw new Error('the association ended before the final response')
      yield response
      const status = response.command.status ?? DIMSE_STATUS.success
      if (status !== DIMSE_STATUS.pending && status !== 0xff01) return
    }
  }

  /** C-CANCEL of the request under way (its final response still comes, with status Cancel). */
  async cancel(context: AcceptedContext, messageId: number): Promise<void> {
    const command: Command = {
      commandField: COMMAND_FIELD.cCancelRq,
      messageIdBeingRespondedTo: messageId,
      commandDataSetType: NO_DATA_SET
    }
    await sendMessage(this.#socket, context.id, command, undefined, this.maxPduLength)
  }

  /** A-RELEASE-RQ, and the answer; the connection is closed either way. */
  async release(): Promise<void> {
    if (this.#state !== 'associated') return
    this.#state = 'releasing'
    const answered = this.#wait(ASSOCIATE_TIMEOUT_MS)
    this.#socket.write(encodeReleaseRq())
    try {
      await answered
    } finally {
      this.#socket.destroy()
    }
  }

  /** Ends the association at once, with an A-ABORT. */
  abort(): void {
    this.#fail(new Error('aborted'), true)
  }

  // PduSink

  pduHeader(type: number): void {
    const expected: number[] =
      this.#state === 'associating'
        ? [PDU_TYPE.associateAc, PDU_TYPE.associateRj, PDU_TYPE.abort]
        : [PDU_TYPE.pDataTf, PDU_TYPE.releaseRp, PDU_TYPE.abort]
    if (!expected.includes(type)) throw new DicomProtocolError('unexpected-pdu', `PDU type ${hex2(type)} here`)
  }

  pdu(type: number, body: Buffer): void {
    if (type === PDU_TYPE.associateAc) {
      const ac = decodeAssociateAc(body)
      this.maxPduLength = ac.maxPduLength
      this.accepted = ac.presentationContexts
        .filter(c => c.result === CONTEXT_RESULT.acceptance && this.#proposed.has(c.id))
        .map(c => {
          const abstractSyntax = this.#proposed.get(c.id)?.abstractSyntax ?? ''
          return { id: c.id, abstractSyntax, transferSyntax: c.transferSyntax }
        })
      this.#state = 'associated'
      this.#settle(undefined)
    } else if (type === PDU_TYPE.associateRj) {
      const { result, source, reason } = decodeAssociateRj(body)
      this.#fail(new Error(`association rejected (result ${result}, source ${source}, reason ${reason})`))
    } else if (type === PDU_TYPE.releaseRp) {
      this.#state = 'closed'
      this.#settle(undefined)
    } else if (type === PDU_TYPE.abort) {
      const { source, reason } = decodeAbort(body)
      this.#fail(new Error(`association aborted by the peer (source ${source}, reason ${reason})`))
    }
  }

  pdv(contextId: number, control: number, part: Buffer, end: boolean): void {
    if ((control & PDV_COMMAND) === 0) {
      this.#datasetPart(part, end && (control & PDV_LAST) !== 0)
      return
    }
    this.#command.push(part)
    if (!end || (control & PDV_LAST) === 0) return
    const command = decodeCommand(Buffer.concat(this.#command))
    this.#command = []
    const hasData = command.commandDataSetType !== NO_DATA_SET
    if ((command.commandField & RESPONSE_BIT) !== 0) {
      if (hasData) this.#responseWithData = { command, parts: [] }
      else this.#settle({ command })
    } else if (command.commandField === COMMAND_FIELD.cStoreRq && hasData) {
      this.#storeRequest(command, contextId)
    } else {
      throw new DicomProtocolError(
        'unexpected-pdu',
        `a request (command ${command.commandField}) the SCU does not take`
      )
    }
  }

  /** A data set PDV: of the response that came before it, or of the peer's C-STORE request. */
  #datasetPart(part: Buffer, last: boolean): void {
    const response = this.#responseWithData
    if (response !== undefined) {
      response.parts.push(part)
      if (!last) return
      this.#responseWithData = undefined
      this.#settle({ command: response.command, dataset: Buffer.concat(response.parts) })
      return
    }
    const incoming = this.#incoming
    if (incoming === undefined) throw new DicomProtocolError('unexpected-pdu', 'a data set PDV with no message')
    if (incoming.sink !== undefined && !incoming.sink.write(part)) {
      this.#socket.pause()
      void incoming.sink.drain().then(() => this.#socket.resume())
    }
    if (last) void this.#finishStore(incoming)
  }

  /** The peer's C-STORE (a C-GET sub-operation): its data set goes to `storage` as it arrives. */
  #storeRequest(command: Command, contextId: number): void {
    const context = this.accepted.find(c => c.id === contextId)
    const header: StoreHeader = {
      callingAeTitle: '',
      sopClassUid: command.affectedSopClassUid ?? '',
      sopInstanceUid: command.affectedSopInstanceUid ?? '',
      transferSyntaxUid: context?.transferSyntax ?? ''
    }
    const sink = context === undefined || this.#storage === undefined ? undefined : this.#storage.open(header)
    this.#incoming = { command, contextId, header, sink }
  }

  async #finishStore(incoming: IncomingStore<unknown>): Promise<void> {
    this.#incoming = undefined
    let outcome: StoreOutcome
    if (incoming.sink === undefined || this.#storage === undefined) {
      outcome = { status: DIMSE_STATUS.sopClassNotSupported, errorComment: 'this SCU takes no C-STORE here' }
    } else {
      try {
        outcome = await this.#storage.store({ ...incoming.header, dataset: incoming.sink.finish() })
      } catch (error) {
        outcome = { status: DIMSE_STATUS.outOfResources, errorComment: (error as Error).message.slice(0, 64) }
      }
    }
    const response: Command = {
      commandField: COMMAND_FIELD.cStoreRq | RESPONSE_BIT,
      messageIdBeingRespondedTo: incoming.command.messageId ?? 0,
      affectedSopClassUid: incoming.header.sopClassUid,
      affectedSopInstanceUid: incoming.header.sopInstanceUid,
      commandDataSetType: NO_DATA_SET,
      status: outcome.status,
      ...(outcome.errorComment === undefined ? {} : { errorComment: outcome.errorComment })
    }
    try {
      await sendMessage(this.#socket, incoming.contextId, response, undefined, this.maxPduLength)
    } catch (error) {
      this.#fail(error as Error)
    }
  }

  // Waiting

  /** The next answer: the association, a response, the release; rejects on failure or after `timeoutMs`. */
  async #wait(timeoutMs = ASSOCIATE_TIMEOUT_MS): Promise<ScuResponse | undefined> {
    if (this.#answers.length > 0) return this.#answers.shift()
    if (this.#failure !== undefined) throw this.#failure
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(new Error(`no answer within ${timeoutMs / 1000} s`), true)
      }, timeoutMs)
      this.#waiter = {
        resolve: value => {
          clearTimeout(timer)
          resolve(value)
        },
        reject: error => {
          clearTimeout(timer)
          reject(error)
        }
      }
    })
  }

  #settle(value: ScuResponse | undefined): void {
    const waiter = this.#waiter
    this.#waiter = undefined
    if (waiter === undefined) this.#answers.push(value)
    else waiter.resolve(value)
  }

  #fail(error: Error, abort = false): void {
    if (this.#state === 'closed' && this.#failure === undefined && this.#waiter === undefined) return
    this.#failure ??= error
    this.#state = 'closed'
    this.#reader.stop()
    this.#incoming?.sink?.release()
    this.#incoming = undefined
    if (abort && !this.#socket.destroyed) {
      this.#socket.end(encodeAbort({ source: ABORT_SOURCE.serviceUser, reason: ABORT_REASON.notSpecified }))
      setTimeout(() => this.#socket.destroy(), 1_000).unref()
    } else {
      this.#socket.destroy()
    }
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.reject(this.#failure)
  }
}

async function* once(bytes: Buffer): AsyncGenerator<Uint8Array> {
  yield bytes
}
