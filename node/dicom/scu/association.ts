/**
 * An association the node opens to another DICOM node (a C-MOVE destination), as the requestor: A-ASSOCIATE-RQ
 * with the presentation contexts asked for, then C-STOREs one at a time (each data set streamed as it is read,
 * its response awaited), then A-RELEASE. Built on the same Upper Layer codec as the SCP (dimse/pdu.ts).
 *
 * Whatever the peer does, the association ends: a rejection, an abort, a PDU out of place, a silence past
 * the timeouts or a closed connection fail what is waiting with a message that says which.
 */
import { connect, type Socket } from 'node:net'
import { type Command, COMMAND_FIELD, DATA_SET_PRESENT, decodeCommand, RESPONSE_BIT } from '../dimse/command.ts'
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
  type PresentationContextProposal
} from '../dimse/pdu.ts'
import { MAX_OTHER_PDU_LENGTH, MAX_PDU_LENGTH } from '../scp/limits.ts'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../uids.ts'
import { sendMessage } from './send.ts'

/** Connecting and the association answer, and the release answer, must come this soon (DCMTK's ACSE timeout). */
export const ASSOCIATE_TIMEOUT_MS = 30_000
/** A C-STORE response must come this soon after its data set is sent (a PACS may take a while to commit). */
export const RESPONSE_TIMEOUT_MS = 120_000

export interface ScuOptions {
  host: string
  port: number
  calledAeTitle: string
  callingAeTitle: string
  contexts: PresentationContextProposal[]
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
  #state: 'associating' | 'associated' | 'releasing' | 'closed' = 'associating'
  #failure: Error | undefined
  #waiter: { resolve: (value: Buffer | Command | undefined) => void; reject: (error: Error) => void } | undefined
  #command: Buffer[] = []
  #nextMessageId = 1
  /** accepted presentation contexts */
  accepted: AcceptedContext[] = []
  /** the peer's maximum length received (0 = no limit) */
  maxPduLength = 0

  private constructor(socket: Socket, options: ScuOptions) {
    this.#socket = socket
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
  static async open(options: ScuOptions): Promise<ScuAssociation> {
    const socket = connect({ host: options.host, port: options.port, noDelay: true })
    const association = new ScuAssociation(socket, options)
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
          implementationVersionName: IMPLEMENTATION_VERSION_NAME
        })
      )
    })
    await association.#wait()
    socket.setTimeout(0)
    return association
  }

  /** The accepted context for a SOP class in a transfer syntax, if any. */
  contextFor(sopClassUid: string, transferSyntaxUid: string): AcceptedContext | undefined {
    return this.accepted.find(c => c.abstractSyntax === sopClassUid && c.transferSyntax === transferSyntaxUid)
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
    return (await response) as Command
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

  pdv(_contextId: number, control: number, part: Buffer, end: boolean): void {
    // A C-STORE response has no data set: any data set PDV is passed over.
    if ((control & PDV_COMMAND) === 0) return
    this.#command.push(part)
    if (!end || (control & PDV_LAST) === 0) return
    const command = decodeCommand(Buffer.concat(this.#command))
    this.#command = []
    if ((command.commandField & RESPONSE_BIT) !== 0) this.#settle(command)
  }

  // Waiting

  /** The next answer: the association, a response, the release; rejects on failure or after `timeoutMs`. */
  async #wait(timeoutMs = ASSOCIATE_TIMEOUT_MS): Promise<Buffer | Command | undefined> {
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

  #settle(value: Command | undefined): void {
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.resolve(value)
  }

  #fail(error: Error, abort = false): void {
    if (this.#state === 'closed' && this.#failure === undefined && this.#waiter === undefined) return
    this.#failure ??= error
    this.#state = 'closed'
    this.#reader.stop()
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
