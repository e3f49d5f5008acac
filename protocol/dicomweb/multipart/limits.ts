/**
 * The bounds of a multipart/related body this node reads and writes, each with its reason: a body is read as
 * it arrives, and what a parser holds is bounded by these whatever the parts weigh.
 */
export interface MultipartLimits {
  /** At most this many parts (default DEFAULT_MAX_PARTS); more is a MalformedMessageError. */
  maxParts?: number
  /** At most this many bytes of header fields per part (default DEFAULT_MAX_HEADER_BYTES). */
  maxHeaderBytes?: number
}

/** Parts per body, by default: each part costs its receiver an entry in its answer (a STOW-RS reference). */
export const DEFAULT_MAX_PARTS = 10000
/** Header bytes per part, by default: a header block is held whole until its empty line. Clients send ~100. */
export const DEFAULT_MAX_HEADER_BYTES = 16384
/**
 * The longest boundary read. RFC 2046 says 70 characters, and what this module writes keeps to that; but
 * Orthanc's DICOMweb client sends 73 (two UUIDs), and a node takes what real clients send. A delimiter line
 * is what the parser may carry from one piece to the next, so this bounds that too.
 */
export const MAX_BOUNDARY_LENGTH = 200
/** RFC 2046 5.1.1: the longest boundary, for the ones this module writes. */
export const RFC_BOUNDARY_LENGTH = 70
/**
 * White space read between a boundary and its CR LF ("transport padding", RFC 2046 5.1.1). Gateways add a few
 * bytes if any; bounded so that a delimiter line is told within a bounded look-ahead. More is malformed.
 */
export const MAX_TRANSPORT_PADDING = 256
