/**
 * A minimal DICOM SCU over raw sockets, for the fuzzer and the DICOM port's tests: it speaks PDUs built with
 * radmesh's own codecs (node/dicom/dimse) and lets the caller send anything, valid or not, then reads what the
 * SCP answers as events. Nothing here retries or repairs: a reply that cannot be framed is an event too.
 *
 *   const scu = await RawAssociation.connect(port)
 *   const accepted = await scu.associate(associateRq('RADMESH', 'FUZZ', [storageContext(CT, [EXPLICIT_LE])]))
 *   scu.send(commandPdu(1, storeRq(1, CT, uid)), dataPdus(1, dataset))
 *   const event = await scu.next(5_000) // { type: 'command', command: { status: 0, … } }
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { DIMSE_STATUS, TRANSFER_SYNTAX, VERIFICATION_SOP_CLASS } from '../../node/dicom/dictionary.ts'
import { type Command, decodeCommand, encodeCommand } from '../../node/dicom/dimse/command.ts'
import {
  type Abort,
  type AssociateAc,
  type AssociateRj,
  type AssociateRq,
  DICOM_APPLICATION_CONTEXT,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  encodeAssociateRq,
  encodePDataTf,
  encodeReleaseRq,
  PDU_TYPE,
  PDV_COMMAND,
  PDV_LAST,
  PduReader,
  type PresentationContextProposal
} from '../../node/dicom/dimse/pdu.ts'

export const VERIFICATION = VERIFICATION_SOP_CLASS
export const IMPLICIT_LE = TRANSFER_SYNTAX.implicitLittle
export const EXPLICIT_LE = TRANSFER_SYNTAX.explicitLittle
export const DEFLATED_LE = TRANSFER_SYNTAX.deflatedExplicitLittle
export const EXPLICIT_BE = TRANSFER_SYNTAX.explicitBig
/** The largest P-DATA-TF radmesh announces (its A-ASSOCIATE-AC says so too). */
export const SCP_MAX_PDU = 1_048_576
const CALLING_IMPLEMENTATION_UID = '2.25.166424218330786432120557437325530848418'

export type ScuEvent =
  | { type: 'associate-ac'; ac: AssociateAc }
  | { type: 'associate-rj'; rj: AssociateRj }
  | { type: 'release-rp' }
  | { type: 'abort'; abort: Abort }
  | { type: 'command'; contextId: number; command: Command }
  /** the SCP sent bytes that are not valid PDUs (a finding in itself) */
  | { type: 'garbage'; reason: string }
  | { type: 'closed' }
  | { type: 'timeout' }

export function associateRq(called: string, calling: string, contexts: PresentationContextProposal[]): AssociateRq {
  return {
    protocolVersion: 1,
    calledAeTitle: called,
    callingAeTitle: calling,
    applicationContext: DICOM_APPLICATION_CONTEXT,
    presentationContexts: contexts,
    maxPduLength: 65_536,
    implementationClassUid: CALLING_IMPLEMENTATION_UID,
    implementationVersionName: 'RADMESH_FUZZ'
  }
}

export const storeRq = (messageId: number, sopClassUid: string, sopInstanceUid: string): Command => ({
  affectedSopClassUid: sopClassUid,
  commandField: 0x0001,
  messageId,
  priority: 0,
  commandDataSetType: 0x0000,
  affectedSopInstanceUid: sopInstanceUid
})

export const echoRq = (messageId: number): Command => ({
  affectedSopClassUid: VERIFICATION,
  commandField: 0x0030,
  messageId,
  commandDataSetType: 0x0101
})

export const commandPdu = (contextId: number, command: Command): Buffer =>
  encodePDataTf(contextId, true, encodeCommand(command), SCP_MAX_PDU)

/** A data set as P-DATA-TF PDUs of at most `maxPdu` bytes, the last PDV flagged last unless `last` is false. */
export function dataPdus(contextId: number, dataset: Uint8Array, maxPdu = SCP_MAX_PDU, last = true): Buffer {
  const pdus = encodePDataTf(contextId, false, dataset, maxPdu)
  if (!last) {
    const fragmentMax = maxPdu - 6
    const lastLength = dataset.length - (Math.max(1, Math.ceil(dataset.length / fragmentMax)) - 1) * fragmentMax
    pdus[pdus.length - lastLength - 1] = 0 // the last PDV's message control header: data set, not last
  }
  return pdus
}

/** One P-DATA-TF of one data set PDV (`last`: the data set's last fragment). */
export function dataPdu(contextId: number, fragment: Uint8Array, last: boolean): Buffer {
  const pdu = encodePDataTf(contextId, false, fragment, 0)
  if (!last) pdu[11] = 0
  return pdu
}

/** One TCP connection to an SCP, as an SCU that sends what it is told and reports what comes back. */
export class RawAssociation {
  readonly socket: Socket
  readonly #events: ScuEvent[] = []
  #waiter: (() => void) | undefined
  #closed = false
  #command: Buffer[] = []

  private constructor(socket: Socket) {
    this.socket = socket
    const reader = new PduReader(
      {
        pduHeader: () => {},
        pdu: (type, body) => {
          this.#push(this.#decode(type, body))
        },
        pdv: (contextId, control, part, end) => {
          if ((control & PDV_COMMAND) === 0) throw new Error('a data set PDV from the SCP')
          this.#command.push(Buffer.from(part))
          if (!end || (control & PDV_LAST) === 0) return
          const bytes = Buffer.concat(this.#command)
          this.#command = []
          this.#push({ type: 'command', contextId, command: decodeCommand(bytes) })
        }
      },
      { maxPDataLength: 1 << 24, maxOtherLength: 1 << 16 }
    )
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk)
      } catch (error) {
        this.#push({ type: 'garbage', reason: (error as Error).message })
        socket.destroy()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.#closed = true
      this.#push({ type: 'closed' })
    })
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawAssociation> {
    const socket = connect({ port, host, noDelay: true })
    await once(socket, 'connect') // rejects on 'error'
    return new RawAssociation(socket)
  }

  get closed(): boolean {
    return this.#closed
  }

  #decode(type: number, body: Buffer): ScuEvent {
    if (type === PDU_TYPE.associateAc) return { type: 'associate-ac', ac: decodeAssociateAc(body) }
    if (type === PDU_TYPE.associateRj) return { type: 'associate-rj', rj: decodeAssociateRj(body) }
    if (type === PDU_TYPE.releaseRp) return { type: 'release-rp' }
    if (type === PDU_TYPE.abort) return { type: 'abort', abort: decodeAbort(body) }
    return { type: 'garbage', reason: `PDU type ${type} from an SCP` }
  }

  #push(event: ScuEvent): void {
    // 'closed' comes once, last; everything before it is kept in order.
    if (event.type === 'closed' && this.#events.at(-1)?.type === 'closed') return
    this.#events.push(event)
    this.#waiter?.()
  }

  /** The next event, or `timeout` if none comes in time. After `closed`, `closed` again. */
  async next(timeoutMs: number): Promise<ScuEvent> {
    const deadline = Date.now() + timeoutMs
    while (this.#events.length === 0) {
      const left = deadline - Date.now()
      if (left <= 0) return { type: 'timeout' }
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#waiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#waiter = undefined
    }
    const event = this.#events[0] as ScuEvent
    if (event.type !== 'closed') this.#events.shift()
    return event
  }

  /** Writes bytes; resolves once the socket took them (so a large send does not pile up in memory). */
  async send(...chunks: Buffer[]): Promise<void> {
    for (const chunk of chunks) {
      if (this.#closed || this.socket.destroyed) return
      if (!this.socket.write(chunk)) await this.#drained()
    }
  }

  async #drained(): Promise<void> {
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.socket.off('drain', done)
        this.socket.off('close', done)
        resolve()
      }
      this.socket.on('drain', done)
      this.socket.on('close', done)
    })
  }

  /** Sends an A-ASSOCIATE-RQ and returns the SCP's first answer. */
  async associate(rq: AssociateRq, timeoutMs = 5_000): Promise<ScuEvent> {
    await this.send(encodeAssociateRq(rq))
    return await this.next(timeoutMs)
  }

  /** A-RELEASE-RQ, then the answer. */
  async release(timeoutMs = 5_000): Promise<ScuEvent> {
    await this.send(encodeReleaseRq())
    return await this.next(timeoutMs)
  }

  destroy(): void {
    this.socket.destroy()
  }

  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.#closed && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
    return this.#closed
  }
}

/** What one C-STORE came to, as the fuzzer and the tests classify it. */
export type StoreAnswer =
  | { answer: 'status'; status: number; comment?: string }
  | { answer: 'rejected'; rj: AssociateRj }
  | { answer: 'aborted'; abort: Abort }
  | { answer: 'closed' }
  /** an A-RELEASE-RP instead of the C-STORE response (the SCU asked to release before its data set ended) */
  | { answer: 'released' }
  | { answer: 'garbage'; reason: string }
  | { answer: 'timeout'; stage: string }

export interface StoreOnceOptions {
  port: number
  host?: string
  calledAeTitle: string
  callingAeTitle: string
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
  dataset: Uint8Array
  /** for each stage (association, response) */
  timeoutMs: number
  /** largest P-DATA-TF to send (radmesh takes 1 MiB) */
  maxPdu?: number
  /** replaces the PDUs that carry the command and data set (a PDU-level mutation); default: as encoded */
  pdus?: (command: Buffer, data: Buffer) => Buffer
  /** half-closes the connection once all is sent (for a stream that may leave the SCP waiting for more) */
  endAfterSend?: boolean
}

/** One association, one C-STORE, then release: what the SCP answered at the first point it did not go on. */
export async function storeOnce(options: StoreOnceOptions): Promise<StoreAnswer> {
  const scu = await RawAssociation.connect(options.port, options.host)
  try {
    const context = { id: 1, abstractSyntax: options.sopClassUid, transferSyntaxes: [options.transferSyntaxUid] }
    const rq = associateRq(options.calledAeTitle, options.callingAeTitle, [context])
    const first = await scu.associate(rq, options.timeoutMs)
    if (first.type !== 'associate-ac') return answerOf(first, 'association')
    const accepted = first.ac.presentationContexts.find(c => c.id === 1)
    if (accepted === undefined || accepted.result !== 0) {
      // Refused at negotiation (an abstract or transfer syntax it does not take): a clear refusal.
      await scu.release(options.timeoutMs)
      const comment = `presentation context refused (${accepted?.result ?? 'none'})`
      return { answer: 'status', status: DIMSE_STATUS.sopClassNotSupported, comment }
    }
    const command = commandPdu(1, storeRq(1, options.sopClassUid, options.sopInstanceUid))
    const data = dataPdus(1, options.dataset, options.maxPdu ?? SCP_MAX_PDU)
    await scu.send(options.pdus === undefined ? Buffer.concat([command, data]) : options.pdus(command, data))
    if (options.endAfterSend === true) scu.socket.end()
    const reply = await scu.next(options.timeoutMs)
    if (reply.type !== 'command') return answerOf(reply, 'C-STORE response')
    await scu.release(options.timeoutMs)
    const { status, errorComment } = reply.command
    return { answer: 'status', status: status ?? -1, ...(errorComment === undefined ? {} : { comment: errorComment }) }
  } finally {
    scu.destroy()
  }
}

function answerOf(event: ScuEvent, stage: string): StoreAnswer {
  switch (event.type) {
    case 'associate-rj':
      return { answer: 'rejected', rj: event.rj }
    case 'abort':
      return { answer: 'aborted', abort: event.abort }
    case 'closed':
      return { answer: 'closed' }
    case 'release-rp':
      return { answer: 'released' }
    case 'garbage':
      return { answer: 'garbage', reason: event.reason }
    case 'timeout':
      return { answer: 'timeout', stage }
    default:
      return { answer: 'garbage', reason: `${event.type} at the ${stage}` }
  }
}
