/**
 * Hand-made DICOM associations for the SCP tests (dimse-scp*.test.ts): a peer that speaks PDUs built with the
 * codecs of node/dicom/dimse, reads the SCP's replies with the same PduReader, and the commands it sends.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import * as assert from 'uvu/assert'
import { type Command, decodeCommand, encodeCommand, NO_DATA_SET } from '../../node/dicom/dimse/command.ts'
import {
  type AssociateRq,
  encodeAssociateRq,
  encodePDataTf,
  encodeReleaseRq,
  PDU_TYPE,
  PDV_COMMAND,
  PDV_LAST,
  PduReader
} from '../../node/dicom/dimse/pdu.ts'

export const AE_TITLE = 'RADMESH'
export const CT = '1.2.840.10008.5.1.4.1.1.2'
export const MR = '1.2.840.10008.5.1.4.1.1.4'
export const VERIFICATION = '1.2.840.10008.1.1'
export const EXPLICIT_LE = '1.2.840.10008.1.2.1'
export const IMPLICIT_LE = '1.2.840.10008.1.2'

export type Reply = { pdu: number; body: Buffer } | { contextId: number; command: Command }

/** A connection speaking PDUs by hand; replies are framed by the same PduReader the SCP uses. */
export class Peer {
  readonly socket: Socket
  readonly replies: Reply[] = []
  /** The length field of every P-DATA-TF the SCP sent. */
  readonly pDataLengths: number[] = []
  closed = false
  #waiters: Array<() => void> = []
  #command: Buffer[] = []

  constructor(socket: Socket) {
    this.socket = socket
    const reader = new PduReader(
      {
        pduHeader: (type, length) => {
          if (type === PDU_TYPE.pDataTf) this.pDataLengths.push(length)
        },
        pdu: (type, body) => {
          this.#push({ pdu: type, body: Buffer.from(body) })
        },
        pdv: (contextId, control, part, end) => {
          assert.ok((control & PDV_COMMAND) !== 0, 'the SCP sends commands only')
          this.#command.push(part)
          if (!end || (control & PDV_LAST) === 0) return
          this.#push({ contextId, command: decodeCommand(Buffer.concat(this.#command)) })
          this.#command = []
        }
      },
      { maxPDataLength: 1 << 20, maxOtherLength: 1 << 16 }
    )
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk)
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.#wake()
    })
  }

  static async open(port: number): Promise<Peer> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    return new Peer(socket)
  }

  #push(reply: Reply): void {
    this.replies.push(reply)
    this.#wake()
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }

  /** Waits until `count` replies came (or the connection closed), for 2 s at most. */
  async until(count: number): Promise<Reply[]> {
    const deadline = Date.now() + 2_000
    while (this.replies.length < count && !this.closed && Date.now() < deadline) {
      await new Promise<void>(resolve => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 50)
      })
    }
    return this.replies
  }

  async untilClosed(): Promise<void> {
    const deadline = Date.now() + 3_000
    while (!this.closed && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
    assert.ok(this.closed, 'the SCP closed the connection')
  }

  send(...chunks: Buffer[]): void {
    this.socket.write(Buffer.concat(chunks))
  }
}

export function rq(overrides: Partial<AssociateRq> = {}): Buffer {
  return encodeAssociateRq({
    protocolVersion: 1,
    calledAeTitle: AE_TITLE,
    callingAeTitle: 'HANDMADE',
    applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: [
      { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
      { id: 3, abstractSyntax: CT, transferSyntaxes: ['1.2.840.10008.1.2.4.100', EXPLICIT_LE, IMPLICIT_LE] }
    ],
    maxPduLength: 16_384,
    implementationClassUid: '1.2.3.4',
    ...overrides
  })
}

/** Opens an association with the SCP on `port` and checks it was accepted. */
export async function associate(port: number, overrides: Partial<AssociateRq> = {}): Promise<Peer> {
  const peer = await Peer.open(port)
  peer.send(rq(overrides))
  const [reply] = await peer.until(1)
  assert.ok(reply !== undefined && 'pdu' in reply && reply.pdu === PDU_TYPE.associateAc, 'A-ASSOCIATE-AC')
  peer.replies.length = 0
  return peer
}

export const echoRq = (messageId: number): Command => ({
  affectedSopClassUid: VERIFICATION,
  commandField: 0x0030,
  messageId,
  commandDataSetType: NO_DATA_SET
})
export const storeRq = (messageId: number, instance: string, sopClass = CT): Command => ({
  affectedSopClassUid: sopClass,
  commandField: 0x0001,
  messageId,
  priority: 0,
  commandDataSetType: 0x0000,
  affectedSopInstanceUid: instance
})
export const command = (contextId: number, value: Command, maxPduLength = 0): Buffer =>
  encodePDataTf(contextId, true, encodeCommand(value), maxPduLength)
export const data = (contextId: number, value: Buffer, maxPduLength = 0): Buffer =>
  encodePDataTf(contextId, false, value, maxPduLength)

export async function release(peer: Peer): Promise<void> {
  const before = peer.replies.length
  peer.send(encodeReleaseRq())
  const replies = await peer.until(before + 1)
  const last = replies.at(-1)
  assert.ok(last !== undefined && 'pdu' in last && last.pdu === PDU_TYPE.releaseRp, 'A-RELEASE-RP')
  await peer.untilClosed()
}

export function responses(peer: Peer): Command[] {
  return peer.replies.flatMap(reply => ('command' in reply ? [reply.command] : []))
}
