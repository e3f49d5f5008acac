/**
 * The node as a Query/Retrieve SCU (PS3.4 C.4) in the Study Root model, over one association each:
 *
 * - C-FIND: an identifier of keys (values to match, empty ones to return) at a level; each Pending response
 *   carries one match's identifier, the final one none. A match count past `maxMatches` cancels the query
 *   (C-CANCEL) and fails it: a patient with more studies than that is not read through here.
 * - C-GET: an identifier naming what to retrieve; the peer sends each instance back on the same association
 *   (C-STORE sub-operations, taken with the SCP role proposed for the storage classes) into `storage`, with a
 *   Pending response after each, then a final status with the counts. No destination to configure in the PACS:
 *   the instances come back on the connection the node opened.
 * - C-MOVE: the same, but the peer opens its own association to the destination AE title it knows.
 *
 * Identifiers go in explicit VR little endian (or implicit, whichever the peer accepts), written and read by the
 * one identifier codec (../identifier.ts).
 */
import { QUERY_RETRIEVE_SOP_CLASSES, STORAGE_SOP_CLASS_ROOT, TRANSFER_SYNTAX } from '../dictionary.ts'
import { COMMAND_FIELD } from '../dimse/command.ts'
import type { PresentationContextProposal, RoleSelection } from '../dimse/pdu.ts'
import { type Identifier, QUERY_RETRIEVE_LEVEL, readIdentifier, writeIdentifier } from '../identifier.ts'
import { type AcceptedContext, ScuAssociation, type ScuStorage } from './association.ts'

/** A DICOM node the node queries and retrieves from (a PACS). */
export interface QueryPeer {
  aeTitle: string
  host: string
  port: number
}

const classOf = (model: 'study', operation: 'find' | 'move' | 'get'): string =>
  Object.entries(QUERY_RETRIEVE_SOP_CLASSES).find(
    ([, c]) => c.model === model && c.operation === operation
  )?.[0] as string

export const STUDY_ROOT_FIND = classOf('study', 'find')
export const STUDY_ROOT_MOVE = classOf('study', 'move')
export const STUDY_ROOT_GET = classOf('study', 'get')

/** A C-FIND answers at most this many matches (a patient's studies, a study's series). */
export const MAX_MATCHES = 1000
/** Presentation contexts an association may carry (ids 1 to 255, odd). */
const MAX_CONTEXTS = 128

const UNCOMPRESSED = [TRANSFER_SYNTAX.explicitLittle, TRANSFER_SYNTAX.implicitLittle]
/** Compressed syntaxes a C-GET also proposes, each in a context of its own, so the PACS sends what it holds. */
const COMPRESSED = [
  TRANSFER_SYNTAX.jpegLosslessSV1,
  TRANSFER_SYNTAX.jpeg2000Lossless,
  TRANSFER_SYNTAX.jpegLsLossless,
  TRANSFER_SYNTAX.rle,
  TRANSFER_SYNTAX.jpegBaseline,
  TRANSFER_SYNTAX.jpeg2000,
  TRANSFER_SYNTAX.deflatedExplicitLittle
]

/** The storage classes a C-GET asks for when the PACS names none for the study: the images a radiologist reads. */
export const COMMON_STORAGE_CLASSES = [
  '1.2.840.10008.5.1.4.1.1.2', // CT
  '1.2.840.10008.5.1.4.1.1.2.1', // Enhanced CT
  '1.2.840.10008.5.1.4.1.1.4', // MR
  '1.2.840.10008.5.1.4.1.1.4.1', // Enhanced MR
  '1.2.840.10008.5.1.4.1.1.1', // CR
  '1.2.840.10008.5.1.4.1.1.1.1', // DX for presentation
  '1.2.840.10008.5.1.4.1.1.1.1.1', // DX for processing
  '1.2.840.10008.5.1.4.1.1.1.2', // MG for presentation
  '1.2.840.10008.5.1.4.1.1.1.2.1', // MG for processing
  '1.2.840.10008.5.1.4.1.1.13.1.3', // Breast tomosynthesis
  '1.2.840.10008.5.1.4.1.1.6.1', // US
  '1.2.840.10008.5.1.4.1.1.3.1', // US multi-frame
  '1.2.840.10008.5.1.4.1.1.20', // NM
  '1.2.840.10008.5.1.4.1.1.128', // PET
  '1.2.840.10008.5.1.4.1.1.12.1', // XA
  '1.2.840.10008.5.1.4.1.1.12.2', // RF
  '1.2.840.10008.5.1.4.1.1.7', // Secondary capture
  '1.2.840.10008.5.1.4.1.1.88.11', // Basic text SR
  '1.2.840.10008.5.1.4.1.1.88.22', // Enhanced SR
  '1.2.840.10008.5.1.4.1.1.88.33', // Comprehensive SR
  '1.2.840.10008.5.1.4.1.1.88.59', // Key object selection
  '1.2.840.10008.5.1.4.1.1.11.1', // Grayscale softcopy presentation state
  '1.2.840.10008.5.1.4.1.1.104.1' // Encapsulated PDF
]

async function openFor(
  peer: QueryPeer,
  callingAeTitle: string,
  contexts: PresentationContextProposal[],
  options: { roles?: RoleSelection[]; storage?: ScuStorage<unknown> } = {}
): Promise<ScuAssociation> {
  return await ScuAssociation.open({
    host: peer.host,
    port: peer.port,
    calledAeTitle: peer.aeTitle,
    callingAeTitle,
    contexts,
    ...options
  })
}

function contextOf(association: ScuAssociation, sopClassUid: string, peer: QueryPeer): AcceptedContext {
  const context = association.contextFor(sopClassUid, '')
  if (context === undefined) {
    association.abort()
    throw new Error(`${peer.aeTitle} does not accept ${sopClassUid} (Study Root Query/Retrieve) from this node`)
  }
  return context
}

const statusText = (status: number | undefined, comment: string | undefined): string =>
  `status 0x${(status ?? 0).toString(16).padStart(4, '0')}${comment === undefined || comment === '' ? '' : ` (${comment})`}`

/** A C-FIND in the Study Root model: the matches' identifiers, in the order the peer sent them. */
export async function findStudyRoot(
  peer: QueryPeer,
  callingAeTitle: string,
  level: 'STUDY' | 'SERIES' | 'IMAGE',
  keys: Identifier,
  maxMatches = MAX_MATCHES
): Promise<Identifier[]> {
  const association = await openFor(peer, callingAeTitle, [
    { id: 1, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: UNCOMPRESSED }
  ])
  try {
    const context = contextOf(association, STUDY_ROOT_FIND, peer)
    const identifier: Identifier = new Map(keys)
    identifier.set(QUERY_RETRIEVE_LEVEL, { vr: 'CS', values: [level] })
    const bytes = writeIdentifier(identifier, context.transferSyntax, '')
    const matches: Identifier[] = []
    let canceled = false
    for await (const { command, dataset } of association.request(
      context,
      { commandField: COMMAND_FIELD.cFindRq, affectedSopClassUid: STUDY_ROOT_FIND, priority: 0 },
      bytes
    )) {
      const status = command.status ?? 0
      if (status === 0xff00 || status === 0xff01) {
        if (dataset !== undefined) matches.push(readIdentifier(dataset, context.transferSyntax))
        if (matches.length > maxMatches && !canceled) {
          canceled = true
          await association.cancel(context, command.messageIdBeingRespondedTo ?? 0)
        }
      } else if (canceled) {
        throw new Error(`${peer.aeTitle} found more than ${maxMatches} matches at ${level} level`)
      } else if (status !== 0) {
        throw new Error(`${peer.aeTitle} answered the C-FIND with ${statusText(status, command.errorComment)}`)
      }
    }
    await association.release()
    return matches
  } catch (error) {
    association.abort()
    throw error
  }
}

/** How a retrieve went: the final status's counts. */
export interface RetrieveOutcome {
  status: number
  completed: number
  failed: number
  warning: number
  errorComment?: string
}

/**
 * Storage contexts for a C-GET: one per SOP class proposing the uncompressed syntaxes, then, while there is
 * room, one per class and compressed syntax, so a PACS that holds an object compressed can send it as it is.
 */
export function storageContexts(sopClasses: readonly string[], firstId = 3): PresentationContextProposal[] {
  const classes = [...new Set(sopClasses.filter(uid => uid.startsWith(STORAGE_SOP_CLASS_ROOT)))]
  const contexts: PresentationContextProposal[] = []
  const room = MAX_CONTEXTS - (firstId - 1) / 2
  const add = (abstractSyntax: string, transferSyntaxes: string[]): void => {
    if (contexts.length < room) contexts.push({ id: firstId + contexts.length * 2, abstractSyntax, transferSyntaxes })
  }
  for (const uid of classes) add(uid, UNCOMPRESSED)
  for (const syntax of COMPRESSED) for (const uid of classes) add(uid, [syntax])
  return contexts
}

async function retrieve(
  peer: QueryPeer,
  callingAeTitle: string,
  operation: 'get' | 'move',
  keys: Identifier,
  options: { storage?: ScuStorage<unknown>; sopClasses?: readonly string[]; destination?: string }
): Promise<RetrieveOutcome> {
  const sopClass = operation === 'get' ? STUDY_ROOT_GET : STUDY_ROOT_MOVE
  const storage = operation === 'get' ? storageContexts(options.sopClasses ?? COMMON_STORAGE_CLASSES) : []
  const association = await openFor(
    peer,
    callingAeTitle,
    [{ id: 1, abstractSyntax: sopClass, transferSyntaxes: UNCOMPRESSED }, ...storage],
    operation === 'get'
      ? {
          roles: [...new Set(storage.map(c => c.abstractSyntax))].map(sopClassUid => ({
            sopClassUid,
            scu: false,
            scp: true
          })),
          ...(options.storage === undefined ? {} : { storage: options.storage })
        }
      : {}
  )
  try {
    const context = contextOf(association, sopClass, peer)
    const bytes = writeIdentifier(keys, context.transferSyntax, '')
    let outcome: RetrieveOutcome | undefined
    for await (const { command } of association.request(
      context,
      {
        commandField: operation === 'get' ? COMMAND_FIELD.cGetRq : COMMAND_FIELD.cMoveRq,
        affectedSopClassUid: sopClass,
        priority: 0,
        ...(options.destination === undefined ? {} : { moveDestination: options.destination })
      },
      bytes
    )) {
      outcome = {
        status: command.status ?? 0,
        completed: command.completedSubOperations ?? 0,
        failed: command.failedSubOperations ?? 0,
        warning: command.warningSubOperations ?? 0,
        ...(command.errorComment === undefined ? {} : { errorComment: command.errorComment })
      }
    }
    await association.release()
    if (outcome === undefined) throw new Error(`${peer.aeTitle} ended the C-${operation.toUpperCase()} with no status`)
    // Success, or Warning (some sub-operations failed): the counts say which. Anything else is a failure.
    if (outcome.status !== 0 && (outcome.status & 0xf000) !== 0xb000)
      throw new Error(
        `${peer.aeTitle} answered the C-${operation.toUpperCase()} with ${statusText(outcome.status, outcome.errorComment)}`
      )
    return outcome
  } catch (error) {
    association.abort()
    throw error
  }
}

/** A C-GET in the Study Root model: the instances come back on the association, into `storage`. */
export async function getStudyRoot<D>(
  peer: QueryPeer,
  callingAeTitle: string,
  keys: Identifier,
  storage: ScuStorage<D>,
  sopClasses?: readonly string[]
): Promise<RetrieveOutcome> {
  return await retrieve(peer, callingAeTitle, 'get', keys, {
    storage: storage as ScuStorage<unknown>,
    ...(sopClasses === undefined ? {} : { sopClasses })
  })
}

/** A C-MOVE in the Study Root model: the peer sends the instances to `destination`, an AE title it knows. */
export async function moveStudyRoot(
  peer: QueryPeer,
  callingAeTitle: string,
  keys: Identifier,
  destination: string
): Promise<RetrieveOutcome> {
  return await retrieve(peer, callingAeTitle, 'move', keys, { destination })
}

/** An identifier from tag -> [VR, value] pairs ('' for a key to return). */
export function keysOf(entries: Record<string, [vr: string, value: string]>): Identifier {
  return new Map(
    Object.entries(entries).map(([tag, [vr, value]]) => [tag, { vr, values: value === '' ? [] : [value] }])
  )
}
