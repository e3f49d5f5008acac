/**
 * Negotiating an association (PS3.8 9.3.2-9.3.4, PS3.7 D.3.3): an A-ASSOCIATE-RQ either becomes the answer
 * to send and the presentation contexts accepted, or a rejection with its source and reason. Each presentation
 * context is accepted with the first transfer syntax the SCU proposes that radmesh can store, so an SCU never
 * has to convert; no asynchronous operations window is offered, so an association does one operation at a time.
 * Query/Retrieve contexts take a little endian uncompressed syntax (their identifiers are written here); a
 * storage SOP class whose SCP role the SCU asks for (a C-GET SCU) is answered with that role, so the node may
 * send it C-STOREs on that context.
 */
import {
  DICOM_UID_ROOT,
  QUERY_RETRIEVE_SOP_CLASSES,
  STORAGE_SOP_CLASS_ROOT,
  SUPPORTED_TRANSFER_SYNTAXES,
  TRANSFER_SYNTAX,
  VERIFICATION_SOP_CLASS
} from '../dictionary.ts'
import {
  type AssociateAc,
  type AssociateRq,
  CONTEXT_RESULT,
  DICOM_APPLICATION_CONTEXT,
  PDV_HEADER_LENGTH,
  type PresentationContextAnswer,
  REJECT_REASON,
  type RoleSelection,
  REJECT_RESULT,
  REJECT_SOURCE
} from '../dimse/pdu.ts'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, uidProblem } from '../uids.ts'

/** Transfer syntaxes accepted on every presentation context, in no order of preference: the SCU's order decides. */
export const ACCEPTED_TRANSFER_SYNTAXES: readonly string[] = Object.freeze([...SUPPORTED_TRANSFER_SYNTAXES])

/** Transfer syntaxes of Query/Retrieve contexts: identifiers are written here, in little endian only. */
const QUERY_TRANSFER_SYNTAXES: readonly string[] = [TRANSFER_SYNTAX.explicitLittle, TRANSFER_SYNTAX.implicitLittle]

/**
 * Verification, Query/Retrieve, every standard storage SOP class, and private (non-DICOM-root) classes an SCU
 * may store with.
 */
export function isAcceptedAbstractSyntax(uid: string): boolean {
  if (uidProblem(uid) !== undefined) return false
  return (
    uid === VERIFICATION_SOP_CLASS ||
    uid in QUERY_RETRIEVE_SOP_CLASSES ||
    uid.startsWith(STORAGE_SOP_CLASS_ROOT) ||
    !uid.startsWith(DICOM_UID_ROOT)
  )
}

/** An accepted presentation context. */
export interface Context {
  id: number
  abstractSyntax: string
  transferSyntax: string
  /** the SCU took the SCP role for its SOP class: the node may send C-STOREs on it (C-GET) */
  scpRole?: boolean
}

/** The role selections answered: the SCP role granted for storage classes, nothing else (PS3.7 D.3.3.4). */
function answerRoles(proposed: readonly RoleSelection[]): RoleSelection[] {
  return proposed
    .filter(({ scp, sopClassUid }) => scp && isAcceptedAbstractSyntax(sopClassUid))
    .filter(({ sopClassUid }) => !(sopClassUid in QUERY_RETRIEVE_SOP_CLASSES))
    .map(role => ({ sopClassUid: role.sopClassUid, scu: role.scu, scp: true }))
}

export interface Rejection {
  /** the log line, and what it says */
  message: string
  fields: Record<string, unknown>
  source: number
  reason: number
  /** a rejection a peer can repeat at will: logged through the rejection log, by kind */
  kind?: string
  result: number
}

/** What the SCP is, and holds, when an A-ASSOCIATE-RQ comes. */
export interface Negotiator {
  /** the called AE title the SCP answers to */
  aeTitle: string
  /** whether the calling AE title may associate from the peer's address */
  allows(callingAeTitle: string): boolean
  address: string | undefined
  /** associations accepted and not yet closed, and how many may be */
  associations: number
  maxAssociations: number
  /** the largest P-DATA-TF we accept, announced in the answer */
  maxPduLength: number
  /** whether Query/Retrieve contexts are accepted */
  queryRetrieve?: boolean
}

export type Negotiation = { accepted: AssociateAc; contexts: Context[] } | { rejected: Rejection }

const rejected = (
  message: string,
  fields: Record<string, unknown>,
  source: number,
  reason: number,
  kind?: string,
  result: number = REJECT_RESULT.permanent
): Negotiation => ({ rejected: { message, fields, source, reason, result, ...(kind === undefined ? {} : { kind }) } })

export function negotiate(rq: AssociateRq, scp: Negotiator): Negotiation {
  const { calledAeTitle, callingAeTitle } = rq
  if ((rq.protocolVersion & 1) === 0) {
    return rejected(
      'DICOM association rejected: protocol version not supported',
      { callingAeTitle, protocolVersion: rq.protocolVersion },
      REJECT_SOURCE.serviceProviderAcse,
      REJECT_REASON.protocolVersionNotSupported
    )
  }
  if (calledAeTitle !== scp.aeTitle.trim()) {
    return rejected(
      'DICOM association rejected: called AE title not recognized',
      { calledAeTitle, callingAeTitle, aeTitle: scp.aeTitle },
      REJECT_SOURCE.serviceUser,
      REJECT_REASON.calledAeNotRecognized
    )
  }
  if (!scp.allows(callingAeTitle)) {
    return rejected(
      'DICOM association rejected: calling AE title not allowed from this address',
      { callingAeTitle, address: scp.address },
      REJECT_SOURCE.serviceUser,
      REJECT_REASON.callingAeNotRecognized,
      'calling-ae'
    )
  }
  if (rq.applicationContext !== DICOM_APPLICATION_CONTEXT) {
    return rejected(
      'DICOM association rejected: application context not supported',
      { callingAeTitle, applicationContext: rq.applicationContext },
      REJECT_SOURCE.serviceUser,
      REJECT_REASON.applicationContextNotSupported
    )
  }
  if (rq.maxPduLength !== 0 && rq.maxPduLength <= PDV_HEADER_LENGTH) {
    return rejected(
      'DICOM association rejected: maximum PDU length too small',
      { callingAeTitle, maxPduLength: rq.maxPduLength },
      REJECT_SOURCE.serviceUser,
      REJECT_REASON.noReason
    )
  }
  const { maxAssociations } = scp
  if (scp.associations >= maxAssociations) {
    // Transient: the SCU may try again once an association ends.
    return rejected(
      'DICOM association rejected: too many associations',
      { callingAeTitle, address: scp.address, maxAssociations },
      REJECT_SOURCE.serviceProviderPresentation,
      REJECT_REASON.localLimitExceeded,
      'limit',
      REJECT_RESULT.transient
    )
  }
  const roles = answerRoles(rq.roles ?? [])
  const contexts: Context[] = []
  const answers: PresentationContextAnswer[] = rq.presentationContexts.map(
    ({ id, abstractSyntax, transferSyntaxes }) => {
      // A rejected context's transfer syntax is not significant, but DCMTK wants the sub-item there.
      const rejected = (result: number): PresentationContextAnswer => ({
        id,
        result,
        transferSyntax: transferSyntaxes[0] ?? TRANSFER_SYNTAX.implicitLittle
      })
      const query = abstractSyntax in QUERY_RETRIEVE_SOP_CLASSES
      if (!isAcceptedAbstractSyntax(abstractSyntax) || (query && scp.queryRetrieve !== true))
        return rejected(CONTEXT_RESULT.abstractSyntaxNotSupported)
      const acceptable = query ? QUERY_TRANSFER_SYNTAXES : ACCEPTED_TRANSFER_SYNTAXES
      const transferSyntax = transferSyntaxes.find(uid => acceptable.includes(uid))
      if (transferSyntax === undefined) return rejected(CONTEXT_RESULT.transferSyntaxesNotSupported)
      const scpRole = roles.some(role => role.sopClassUid === abstractSyntax)
      contexts.push({ id, abstractSyntax, transferSyntax, ...(scpRole ? { scpRole } : {}) })
      return { id, result: CONTEXT_RESULT.acceptance, transferSyntax }
    }
  )
  return {
    contexts,
    accepted: {
      protocolVersion: 1,
      calledAeTitle,
      callingAeTitle,
      applicationContext: DICOM_APPLICATION_CONTEXT,
      presentationContexts: answers,
      // What we announce is what we accept; no asynchronous operations window, so one operation at a time.
      maxPduLength: scp.maxPduLength,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION_NAME,
      ...(roles.length === 0 ? {} : { roles })
    }
  }
}
