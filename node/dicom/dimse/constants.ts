/**
 * The DICOM Upper Layer's numbers (PS3.8 9.3): PDU types, header lengths, the PDV message control bits, and
 * the results, sources and reasons an association answer, rejection or abort carries.
 */

export const PDU_TYPE = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pDataTf: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07
} as const

/** PDU header: type (1), reserved (1), length of the rest (4, big endian). */
export const PDU_HEADER_LENGTH = 6
/**
 * PDV item header: item length (4, big endian, counting what follows), presentation context id (1), message
 * control header (1).
 */
export const PDV_HEADER_LENGTH = 6

/** Message control header bits (PS3.8 E.2): set = command (else data set); set = last fragment. */
export const PDV_COMMAND = 0x01
export const PDV_LAST = 0x02

/** The one application context name of DICOM (PS3.7 A.2.1). */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1'

/** Presentation context results in an A-ASSOCIATE-AC (PS3.8 9.3.3.2). */
export const CONTEXT_RESULT = {
  acceptance: 0,
  userRejection: 1,
  noReason: 2,
  abstractSyntaxNotSupported: 3,
  transferSyntaxesNotSupported: 4
} as const

/** A-ASSOCIATE-RJ result and source (PS3.8 9.3.4). */
export const REJECT_RESULT = { permanent: 1, transient: 2 } as const
export const REJECT_SOURCE = { serviceUser: 1, serviceProviderAcse: 2, serviceProviderPresentation: 3 } as const
/**
 * A-ASSOCIATE-RJ reasons; their meaning depends on the source (service user: the first four; ACSE provider:
 * protocol version; presentation provider: the last two).
 */
export const REJECT_REASON = {
  noReason: 1,
  applicationContextNotSupported: 2,
  callingAeNotRecognized: 3,
  calledAeNotRecognized: 7,
  protocolVersionNotSupported: 2,
  temporaryCongestion: 1,
  localLimitExceeded: 2
} as const

/** A-ABORT source and, for the service provider, reason (PS3.8 9.3.8). */
export const ABORT_SOURCE = { serviceUser: 0, serviceProvider: 2 } as const
export const ABORT_REASON = {
  notSpecified: 0,
  unrecognizedPdu: 1,
  unexpectedPdu: 2,
  unrecognizedPduParameter: 4,
  unexpectedPduParameter: 5,
  invalidPduParameter: 6
} as const

export const hex2 = (value: number): string => `0x${value.toString(16).padStart(2, '0')}`
