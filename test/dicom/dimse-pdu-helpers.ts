/**
 * What the Upper Layer codec tests (dimse-pdu*.test.ts) share: a sink that records what a PduReader reports,
 * PDUs and PDVs made by hand, a reference A-ASSOCIATE-RQ, and an assertion on DicomProtocolError's problem.
 */
import * as assert from 'uvu/assert'
import { DicomProtocolError, type DicomProtocolProblem } from '../../node/dicom/dimse/errors.ts'
import type { AssociateRq, PduLimits, PduSink } from '../../node/dicom/dimse/pdu.ts'

export function throwsProblem(fn: () => unknown, problem: DicomProtocolProblem, what: string): void {
  try {
    fn()
  } catch (error) {
    assert.instance(error, DicomProtocolError, what)
    assert.is((error as DicomProtocolError).problem, problem, `${what}: ${(error as Error).message}`)
    return
  }
  assert.unreachable(`${what} was accepted`)
}

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
export function random(seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

export type Event = { pdu: number; body: Buffer } | { pdv: number; control: number; data: Buffer }

/** A sink that records whole PDUs and whole PDVs (joining the parts of each PDV). */
export function recorder(): { sink: PduSink; events: Event[]; parts: Buffer[]; headers: Array<[number, number]> } {
  const events: Event[] = []
  const parts: Buffer[] = []
  const headers: Array<[number, number]> = []
  let pending: Buffer[] = []
  const sink: PduSink = {
    pduHeader(type, length) {
      headers.push([type, length])
    },
    pdu(type, body) {
      events.push({ pdu: type, body: Buffer.from(body) })
    },
    pdv(contextId, control, part, end) {
      parts.push(part)
      pending.push(part)
      if (!end) return
      events.push({ pdv: contextId, control, data: Buffer.concat(pending) })
      pending = []
    }
  }
  return { sink, events, parts, headers }
}

export const LIMITS: PduLimits = { maxPDataLength: 1_048_576, maxOtherLength: 65_536 }

export function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6)
  header[0] = type
  header.writeUInt32BE(body.length, 2)
  return Buffer.concat([header, body])
}

export function pdv(contextId: number, control: number, fragment: Buffer): Buffer {
  const header = Buffer.alloc(6)
  header.writeUInt32BE(fragment.length + 2, 0)
  header[4] = contextId
  header[5] = control
  return Buffer.concat([header, fragment])
}

export const bodyOf = (whole: Buffer): Buffer => {
  assert.is(whole.readUInt32BE(2), whole.length - 6, 'PDU length field')
  return whole.subarray(6)
}

export const RQ: AssociateRq = {
  protocolVersion: 1,
  calledAeTitle: 'RADMESH',
  callingAeTitle: 'CT_SCANNER_01',
  applicationContext: '1.2.840.10008.3.1.1.1',
  presentationContexts: [
    { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
    {
      id: 3,
      abstractSyntax: '1.2.840.10008.5.1.4.1.1.2',
      transferSyntaxes: ['1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2']
    },
    { id: 255, abstractSyntax: '1.2.3.4.5', transferSyntaxes: [] }
  ],
  maxPduLength: 16_384,
  implementationClassUid: '1.2.276.0.7230010.3.0.3.6.7',
  implementationVersionName: 'OFFIS_DCMTK_367'
}
