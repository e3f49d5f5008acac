import { ABORT_REASON, ABORT_SOURCE } from './constants.ts'

/** Why bytes from a DICOM peer are not a valid PDU, PDV or command set; stable, so tests can name it. */
export type DicomProtocolProblem =
  | 'unknown-pdu-type' // a PDU type PS3.8 does not define
  | 'unexpected-pdu' // a defined PDU at a point of the association where it may not come
  | 'too-long' // a PDU, or a command set, longer than the limit
  | 'truncated' // the stream or a PDU ends inside a header, an item or a value
  | 'bad-length' // a length field that contradicts the PDU (fixed-size PDU, PDV shorter than its header)
  | 'bad-item' // an A-ASSOCIATE item that is missing, repeated or malformed
  | 'bad-pdv' // a PDV longer than its PDU, on a presentation context not accepted, or out of order
  | 'bad-command' // a DIMSE command set that is not a valid group 0000 in implicit VR little endian

/**
 * Thrown by the Upper Layer and DIMSE codecs when a peer's bytes are not what PS3.8 / PS3.7 allow.
 * The SCP ends the connection (or, for a command set it cannot read, ignores the command); it never crashes.
 */
export class DicomProtocolError extends Error {
  static override readonly name = 'DicomProtocolError'
  readonly code = 'RADMESH_DICOM_PROTOCOL'
  readonly problem: DicomProtocolProblem
  constructor(problem: DicomProtocolProblem, message: string) {
    super(message)
    this.name = 'DicomProtocolError'
    this.problem = problem
  }
}

/** The A-ABORT (source, reason) to send when a peer's bytes break the protocol this way. */
export function abortFor(problem: DicomProtocolProblem): { source: number; reason: number } {
  const reason =
    problem === 'unknown-pdu-type'
      ? ABORT_REASON.unrecognizedPdu
      : problem === 'unexpected-pdu'
        ? ABORT_REASON.unexpectedPdu
        : ABORT_REASON.invalidPduParameter
  return { source: ABORT_SOURCE.serviceProvider, reason }
}
