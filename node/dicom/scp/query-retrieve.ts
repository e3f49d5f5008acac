/**
 * The Query/Retrieve SCP (PS3.4 C.4): C-FIND, C-MOVE and C-GET in the Patient Root and Study Root models, on
 * a provider that matches and reads (the archive). The exchange for each:
 *
 * - C-FIND: the SCU's identifier names a level and keys; each match goes back as a Pending response with its
 *   identifier (the keys asked for, with the values found), then a final Success. A C-CANCEL stops it (Cancel).
 * - C-MOVE: the identifier names what to send and the command a destination AE title, which the node must
 *   know (`--dicom-peer`); the node opens an association to it and sends each instance by C-STORE, a Pending
 *   response with the counts after each, then a final status with the counts and the instances that failed.
 * - C-GET: the same, with the C-STOREs on the SCU's own association, on the storage contexts it proposed with
 *   the SCP role.
 *
 * Instances go in the transfer syntax they are stored in, never converted: a destination that accepts none of
 * the syntaxes they need has those sub-operations failed, and the error comment says why.
 */
import type { Logger } from '../../log.ts'
import { DIMSE_STATUS, QUERY_RETRIEVE_SOP_CLASSES, type QueryModel, type QueryOperation } from '../dictionary.ts'
import { type Command, DATA_SET_PRESENT, NO_DATA_SET, RESPONSE_BIT } from '../dimse/command.ts'
import {
  CHARSET_KEY,
  type Identifier,
  keyText,
  QUERY_RETRIEVE_LEVEL,
  readIdentifier,
  writeIdentifier
} from '../identifier.ts'
import { type Destination, type RetrieveInstance, sendInstances, type SubOperations } from './sub-operations.ts'
import type { Context } from './negotiation.ts'

export type { Destination, RetrieveInstance } from './sub-operations.ts'

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE'
const LEVELS: Record<QueryModel, readonly QueryLevel[]> = {
  patient: ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'],
  study: ['STUDY', 'SERIES', 'IMAGE']
}
/** The Retrieve AE Title key, answered with the node's own. */
const RETRIEVE_AE_TITLE = '00080054'
/** The Failed SOP Instance UID List of a final C-MOVE / C-GET response. */
const FAILED_SOP_INSTANCE_UIDS = '00080058'
/** UIDs listed there at most: the element's 16-bit length (explicit VR) holds about a thousand. */
const MAX_FAILED_LISTED = 1000

/** What the SCU asked, for the provider. */
export interface QueryRequest {
  model: QueryModel
  level: QueryLevel
  identifier: Identifier
  callingAeTitle: string
  address: string | undefined
}

/** A request the provider turns down, with the status and a comment. */
export interface Refusal {
  status: number
  errorComment: string
}

/** How a retrieve went, for the audit trail. */
export interface RetrieveReport {
  request: QueryRequest
  operation: 'move' | 'get'
  /** the destination AE title (C-MOVE) or the calling one (C-GET) */
  destination: string
  sent: RetrieveInstance[]
  failed: RetrieveInstance[]
}

/** What the Query/Retrieve SCP asks of the node. */
export interface QueryRetrieveProvider {
  /** The matches of a C-FIND, each with the keys of the identifier filled in (unknown ones empty). */
  find(request: QueryRequest): Promise<Identifier[] | Refusal>
  /** The instances a C-MOVE or C-GET names. */
  retrieve(request: QueryRequest): Promise<RetrieveInstance[] | Refusal>
  /** A C-MOVE destination by AE title. */
  destination(aeTitle: string): Destination | undefined
  retrieved(report: RetrieveReport): Promise<void>
}

/** What a Query/Retrieve operation needs of its association. */
export interface QueryChannel {
  aeTitle: string
  callingAeTitle: string
  address: string | undefined
  log: Logger
  /** a C-CANCEL for this operation came */
  signal: AbortSignal
  respond(command: Command, identifier?: Buffer): Promise<void>
  /** C-GET: the association's own sub-operations */
  here: SubOperations
}

export const isQueryRetrieve = (context: Context): boolean => context.abstractSyntax in QUERY_RETRIEVE_SOP_CLASSES

const refused = (status: number, errorComment: string): Refusal => ({ status, errorComment })

/** The request the identifier makes, or why it cannot be answered. */
function requestOf(bytes: Buffer | undefined, context: Context, channel: QueryChannel, operation: QueryOperation) {
  const sopClass = QUERY_RETRIEVE_SOP_CLASSES[context.abstractSyntax]
  if (sopClass === undefined || sopClass.operation !== operation)
    return refused(DIMSE_STATUS.sopClassNotSupported, `not a ${operation} presentation context`)
  if (bytes === undefined) return refused(DIMSE_STATUS.identifierMismatch, 'no identifier')
  let identifier: Identifier
  try {
    identifier = readIdentifier(bytes, context.transferSyntax)
  } catch (error) {
    return refused(DIMSE_STATUS.cannotUnderstand, `identifier not readable: ${(error as Error).message}`)
  }
  const level = (keyText(identifier, QUERY_RETRIEVE_LEVEL) ?? '').toUpperCase() as QueryLevel
  if (!LEVELS[sopClass.model].includes(level))
    return refused(DIMSE_STATUS.identifierMismatch, `QueryRetrieveLevel "${level}" is not one of this model's`)
  return {
    model: sopClass.model,
    level,
    identifier,
    callingAeTitle: channel.callingAeTitle,
    address: channel.address
  } satisfies QueryRequest
}

/** A response to `request`; pending ones and those with an identifier say so. */
function response(request: Command, context: Context, status: number, extra: Partial<Command> = {}): Command {
  return {
    affectedSopClassUid: context.abstractSyntax,
    commandField: request.commandField | RESPONSE_BIT,
    messageIdBeingRespondedTo: request.messageId ?? 0,
    commandDataSetType: NO_DATA_SET,
    status,
    ...extra
  }
}

const comment = (text: string): Partial<Command> => ({
  errorComment: text.replace(/[^\x20-\x5B\x5D-\x7E]/g, ' ').slice(0, 64)
})

export async function find(
  command: Command,
  context: Context,
  bytes: Buffer | undefined,
  channel: QueryChannel,
  provider: QueryRetrieveProvider
): Promise<void> {
  const request = requestOf(bytes, context, channel, 'find')
  if ('status' in request) {
    await channel.respond(response(command, context, request.status, comment(request.errorComment)))
    return
  }
  const matches = await provider.find(request)
  if ('status' in matches) {
    await channel.respond(response(command, context, matches.status, comment(matches.errorComment)))
    return
  }
  const charset = keyText(request.identifier, CHARSET_KEY) ?? ''
  for (const match of matches) {
    if (channel.signal.aborted) {
      await channel.respond(response(command, context, DIMSE_STATUS.cancel))
      return
    }
    match.set(QUERY_RETRIEVE_LEVEL, { vr: 'CS', values: [request.level] })
    if (request.identifier.has(RETRIEVE_AE_TITLE)) match.set(RETRIEVE_AE_TITLE, { vr: 'AE', values: [channel.aeTitle] })
    const pending = response(command, context, DIMSE_STATUS.pending, { commandDataSetType: DATA_SET_PRESENT })
    await channel.respond(pending, writeIdentifier(match, context.transferSyntax, charset))
  }
  channel.log.info({ callingAeTitle: channel.callingAeTitle, level: request.level, matches: matches.length }, 'C-FIND')
  await channel.respond(response(command, context, DIMSE_STATUS.success))
}

/** C-MOVE (`operation` 'move') or C-GET ('get'). */
export async function retrieve(
  operation: 'move' | 'get',
  command: Command,
  context: Context,
  bytes: Buffer | undefined,
  channel: QueryChannel,
  provider: QueryRetrieveProvider
): Promise<void> {
  const request = requestOf(bytes, context, channel, operation)
  const fail = async (refusal: Refusal): Promise<void> => {
    await channel.respond(response(command, context, refusal.status, comment(refusal.errorComment)))
  }
  if ('status' in request) return await fail(request)
  let destination: Destination | undefined
  const destinationAe = operation === 'move' ? (command.moveDestination ?? '').trim() : channel.callingAeTitle
  if (operation === 'move') {
    destination = provider.destination(destinationAe)
    if (destination === undefined)
      return await fail(refused(DIMSE_STATUS.moveDestinationUnknown, `move destination "${destinationAe}" unknown`))
  }
  const instances = await provider.retrieve(request)
  if ('status' in instances) return await fail(instances)
  const counts = { remaining: instances.length, completed: 0, failed: 0, warning: 0 }
  const countsOf = (): Partial<Command> => ({
    completedSubOperations: counts.completed,
    failedSubOperations: counts.failed,
    warningSubOperations: counts.warning
  })
  const originator = { aeTitle: channel.callingAeTitle, messageId: command.messageId ?? 0 }
  const outcome = await sendInstances(instances, {
    ...(destination === undefined ? { here: channel.here } : { destination, callingAeTitle: channel.aeTitle }),
    ...(operation === 'move' ? { originator } : {}),
    signal: channel.signal,
    log: channel.log,
    progress: async (status: 'completed' | 'failed' | 'warning') => {
      counts.remaining--
      counts[status]++
      if (counts.remaining === 0) return
      const pending = { remainingSubOperations: counts.remaining, ...countsOf() }
      // The SCU gone, the association's end cancels what is left: the retrieve is still audited.
      await channel.respond(response(command, context, DIMSE_STATUS.pending, pending)).catch(() => {})
    }
  })
  // Canceled, what was not sent remains (it did not fail); otherwise it failed with the sub-operation before it.
  const failed = outcome.canceled ? outcome.failed : [...outcome.failed, ...outcome.notSent]
  await provider.retrieved({ request, operation, destination: destinationAe, sent: outcome.sent, failed })
  channel.log.info(
    { callingAeTitle: channel.callingAeTitle, operation, to: destinationAe, ...counts, problem: outcome.problem },
    operation === 'move' ? 'C-MOVE' : 'C-GET'
  )
  const failedUids = failed.map(i => i.sopInstanceUid)
  const status = outcome.canceled
    ? DIMSE_STATUS.cancel
    : failedUids.length === 0 && counts.warning === 0
      ? DIMSE_STATUS.success
      : counts.completed + counts.warning === 0
        ? DIMSE_STATUS.subOperationsRefused
        : DIMSE_STATUS.subOperationsFailed
  counts.failed = failedUids.length
  const final = response(command, context, status, {
    ...countsOf(),
    ...(outcome.canceled ? { remainingSubOperations: outcome.notSent.length } : {}),
    ...(outcome.problem === undefined ? {} : comment(outcome.problem)),
    ...(failedUids.length === 0 ? {} : { commandDataSetType: DATA_SET_PRESENT })
  })
  const listed = failedUids.slice(0, MAX_FAILED_LISTED)
  const failedList: Identifier = new Map([[FAILED_SOP_INSTANCE_UIDS, { vr: 'UI', values: listed }]])
  const identifier = failedUids.length === 0 ? undefined : writeIdentifier(failedList, context.transferSyntax, '')
  await channel.respond(final, identifier)
}
