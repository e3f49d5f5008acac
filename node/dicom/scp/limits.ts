/**
 * What the DICOM port lets one peer, or all of them, make the node hold, each bound with its reason: the
 * limits a site sets (`DicomLimits`, each a `radmesh start` option) and those fixed here, and the log of
 * rejections a peer can repeat at will.
 */
import type { Logger } from '../../log.ts'
import type { DicomCaller } from '../peers.ts'

/** What one peer, or all of them, can hold of the DICOM port; see DEFAULT_DICOM_LIMITS for the reasons. */
export interface DicomLimits {
  /** associations open at once; past it, A-ASSOCIATE-RJ (transient, local limit exceeded) */
  maxAssociations: number
  /** no byte for this long inside a PDU or a DIMSE message: A-ABORT */
  pduTimeoutMs: number
  /** no traffic at all for this long between operations: A-ABORT */
  idleTimeoutMs: number
  /** calling AE titles and their addresses allowed to associate; empty: any */
  allowedCallers: readonly DicomCaller[]
}

export const DEFAULT_DICOM_LIMITS: Readonly<DicomLimits> = Object.freeze({
  // A modality or PACS opens one to a few associations to send a study; 16 leaves room for a busy site while
  // bounding what unauthenticated peers can make the node hold at once (each association buffers at most a
  // PDU, 1 MiB, and whatever its data set's sink holds).
  maxAssociations: 16,
  // An SCU sends a PDU's bytes back to back; a minute without one inside a PDU or a message is a stalled or
  // hostile peer, not a slow network (TCP would have given up or retransmitted long before).
  pduTimeoutMs: 60_000,
  // Between operations an SCU may wait for its user (a technologist picking the next series).
  idleTimeoutMs: 10 * 60_000,
  allowedCallers: Object.freeze([])
})

/** TCP connections still negotiating (no association yet) allowed besides the associations. */
export const MAX_PENDING_CONNECTIONS = 32
/** Rejections of one kind logged per interval at most; the first line of the next interval counts the rest. */
const REJECTION_LOG_INTERVAL_MS = 10_000
const REJECTIONS_LOGGED_PER_INTERVAL = 5

/**
 * Largest P-DATA-TF PDU (its length field) we announce and accept. Bigger PDUs mean fewer PDV headers and
 * callbacks per data set; a 0.5 MB slice fits in one. An SCU may send smaller ones (DCMTK caps its own at 128 KiB).
 */
export const MAX_PDU_LENGTH = 1_048_576
/** Largest PDU of any other type (an A-ASSOCIATE-RQ with 128 presentation contexts is far smaller). */
export const MAX_OTHER_PDU_LENGTH = 65_536
/** Data set fragments shorter than this are gathered into batches of BATCH_LENGTH before they reach the sink. */
export const BATCH_BELOW = 4096
export const BATCH_LENGTH = 65_536
/** Largest command set (a real one is under 300 bytes); its fragments are kept until it is whole. */
export const MAX_COMMAND_LENGTH = 16_384
/**
 * Largest Query/Retrieve identifier (a real one is a few hundred bytes; a long UID list a few tens of KiB); it
 * is kept whole until read. Past it, the association is aborted.
 */
export const MAX_IDENTIFIER_LENGTH = 262_144
/** The SCU must send its A-ASSOCIATE-RQ this soon after connecting. */
export const ASSOCIATION_TIMEOUT_MS = 30_000
/** After a reject, a release or an abort, the SCU closes the connection; if it does not, we do after this. */
export const CLOSE_GRACE_MS = 2_000

/** The limits of `options`, defaults filled in; RangeError for one that is not a positive integer. */
export function limitsOf(options: Partial<DicomLimits>): DicomLimits {
  const limits: DicomLimits = {
    maxAssociations: options.maxAssociations ?? DEFAULT_DICOM_LIMITS.maxAssociations,
    pduTimeoutMs: options.pduTimeoutMs ?? DEFAULT_DICOM_LIMITS.pduTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_DICOM_LIMITS.idleTimeoutMs,
    allowedCallers: options.allowedCallers ?? DEFAULT_DICOM_LIMITS.allowedCallers
  }
  for (const key of ['maxAssociations', 'pduTimeoutMs', 'idleTimeoutMs'] as const) {
    if (!Number.isSafeInteger(limits[key]) || limits[key] <= 0) {
      throw new RangeError(`${key} must be a positive integer, not ${limits[key]}`)
    }
  }
  return limits
}

/**
 * Rejections a peer can repeat at will (not allowed, over the limit), logged without letting it fill the log:
 * the first few of each kind per interval, then one line per interval saying how many were left out.
 */
export class RejectionLog {
  readonly #windows = new Map<string, { start: number; logged: number; left: number }>()
  warn(log: Logger, kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    let window = this.#windows.get(kind)
    if (window === undefined || now - window.start >= REJECTION_LOG_INTERVAL_MS) {
      const left = window?.left ?? 0
      window = { start: now, logged: 0, left: 0 }
      this.#windows.set(kind, window)
      if (left > 0) fields = { ...fields, notLogged: left }
    }
    if (window.logged >= REJECTIONS_LOGGED_PER_INTERVAL) {
      window.left++
      return
    }
    window.logged++
    log.warn(fields, message)
  }
}
