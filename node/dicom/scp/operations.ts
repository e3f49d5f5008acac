/**
 * The DIMSE operations the SCP answers (PS3.7 9.1, PS3.4 A, B): C-ECHO, C-STORE, and "unrecognized operation"
 * for the rest but Query/Retrieve (query-retrieve.ts); what a C-STORE's data set is handed over as
 * (`DatasetSink`, `StoreRequest`), and the statuses it is answered with (dictionary.ts).
 */
import type { Logger } from '../../log.ts'
import { DIMSE_STATUS } from '../dictionary.ts'
import { type Command, COMMAND_FIELD, NO_DATA_SET, OPERATIONS, RESPONSE_BIT } from '../dimse/command.ts'
import type { Context } from './negotiation.ts'

/** What a C-STORE request says of its data set, known before the data set arrives. */
export interface StoreHeader {
  callingAeTitle: string
  /** Affected SOP Class UID ('' when the command has none: refused once the data set is in) */
  sopClassUid: string
  /** Affected SOP Instance UID ('' when the command has none) */
  sopInstanceUid: string
  /** The negotiated transfer syntax of the presentation context the data set came on. */
  transferSyntaxUid: string
}

export interface StoreRequest<D = Uint8Array> extends StoreHeader {
  /** Exactly the data set bytes the SCU sent (no re-encoding, no meta header), as the sink made them. */
  dataset: D
}

/**
 * Where a data set's bytes go as its PDVs arrive, and what `finish` makes of them for onStore. `write` is called
 * synchronously from the socket reader and must not throw; when it returns false the socket is paused until
 * `drain()` resolves (the rest of the socket read already in hand is still written). A data set that does not
 * reach onStore (its association ended first, or the request was refused before) is given up with `release()`;
 * one that does belongs to onStore from then on.
 */
export interface DatasetSink<D> {
  /** `part`: a slice of a socket read, or a batch of small fragments; the sink may keep it (we never reuse it) */
  write(part: Buffer): boolean
  drain(): Promise<void>
  finish(): D
  release(): void
}

/** What onStore answers: a DIMSE status (DIMSE_STATUS: success, or a failure), and a comment for a failure. */
export interface StoreOutcome {
  status: number
  errorComment?: string
}

/** The default sink: the fragments as slices of the TCP reads they came in, joined once. */
export function collectDataset(): DatasetSink<Uint8Array> {
  let parts: Buffer[] = []
  let length = 0
  return {
    write: part => {
      parts.push(part)
      length += part.length
      return true
    },
    drain: async () => {},
    finish: () => (parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length)),
    release: () => {
      parts = []
      length = 0
    }
  }
}

/** A DIMSE message to handle; `taken` once onStore has its data set (else the sink is released after). */
export interface Message<D> {
  command: Command
  context: Context
  dataset: D | undefined
  sink: DatasetSink<D> | undefined
  length: number
  taken: boolean
  /** a C-FIND, C-MOVE or C-GET identifier's bytes */
  identifier?: Buffer | undefined
}

/** An error comment (LO: at most 64 characters, no backslash, no control characters, plain ASCII here). */
function errorCommentOf(text: string): string {
  return text
    .replace(/[^\x20-\x5B\x5D-\x7E]/g, ' ')
    .trim()
    .slice(0, 64)
}

function isValidStatus(status: unknown): status is number {
  return typeof status === 'number' && Number.isInteger(status) && status >= 0 && status <= 0xffff
}

/** The failure status for an onStore that threw: out of resources when the machine is, cannot understand otherwise. */
function statusOfError(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'ENOMEM' || code === 'EMFILE' || code === 'ENFILE'
    ? DIMSE_STATUS.outOfResources
    : DIMSE_STATUS.cannotUnderstand
}

/** What an operation needs of its association. */
export interface Association<D> {
  callingAeTitle: string
  log: Logger
  onStore(request: StoreRequest<D>): Promise<StoreOutcome>
  /** onStore calls still running, so the SCP's stop() can wait for them */
  inFlight: Set<Promise<unknown>>
}

/**
 * What to do about a message: send `response` (after a C-STORE, `stored` says whether it was), end the
 * association (`abort`: an operation DIMSE does not define), or nothing (a C-CANCEL, a command not understood).
 */
export type Answer = { response: Command; stored?: boolean } | { abort: string } | undefined

export async function perform<D>(message: Message<D>, association: Association<D>): Promise<Answer> {
  const { command, context } = message
  const { commandField, messageId } = command
  const { log, callingAeTitle } = association
  if (commandField === COMMAND_FIELD.cCancelRq) return undefined // nothing of ours runs long enough to cancel
  const operation = OPERATIONS.get(commandField)
  if (operation === undefined)
    return { abort: `unrecognized DIMSE command field 0x${commandField.toString(16).padStart(4, '0')}` }
  if (messageId === undefined) {
    log.warn({ operation, callingAeTitle }, 'DIMSE command not understood, ignored')
    return undefined
  }
  const response: Command = {
    affectedSopClassUid: command.affectedSopClassUid ?? command.requestedSopClassUid ?? context.abstractSyntax,
    commandField: commandField | RESPONSE_BIT,
    messageIdBeingRespondedTo: messageId,
    commandDataSetType: NO_DATA_SET,
    status: DIMSE_STATUS.success
  }
  if (commandField === COMMAND_FIELD.cEchoRq) return { response }
  if (commandField !== COMMAND_FIELD.cStoreRq) {
    log.warn({ operation, callingAeTitle }, 'DIMSE operation not supported')
    const instance = command.affectedSopInstanceUid ?? command.requestedSopInstanceUid
    return {
      response: {
        ...response,
        status: DIMSE_STATUS.unrecognizedOperation,
        ...(instance === undefined ? {} : { affectedSopInstanceUid: instance })
      }
    }
  }
  const storing = store(message, association)
  association.inFlight.add(storing)
  let outcome: StoreOutcome
  try {
    outcome = await storing
  } finally {
    association.inFlight.delete(storing)
  }
  const comment = errorCommentOf(outcome.errorComment ?? '')
  return {
    stored: outcome.status === DIMSE_STATUS.success,
    response: {
      ...response,
      status: outcome.status,
      ...(comment === '' ? {} : { errorComment: comment }),
      ...(command.affectedSopInstanceUid === undefined
        ? {}
        : { affectedSopInstanceUid: command.affectedSopInstanceUid })
    }
  }
}

async function store<D>(message: Message<D>, association: Association<D>): Promise<StoreOutcome> {
  const { command, context, dataset, length } = message
  const { log } = association
  const sopClassUid = command.affectedSopClassUid ?? ''
  const sopInstanceUid = command.affectedSopInstanceUid ?? ''
  if (dataset === undefined) return { status: DIMSE_STATUS.cannotUnderstand, errorComment: 'no data set received' }
  if (context.abstractSyntax !== sopClassUid) {
    log.warn(
      { sopClassUid, sopInstanceUid, abstractSyntax: context.abstractSyntax },
      'C-STORE on a presentation context not accepted for its SOP class'
    )
    return {
      status: DIMSE_STATUS.sopClassNotSupported,
      errorComment: 'presentation context not accepted for this SOP class'
    }
  }
  if (sopInstanceUid === '')
    return { status: DIMSE_STATUS.cannotUnderstand, errorComment: 'no Affected SOP Instance UID' }
  const request: StoreRequest<D> = {
    callingAeTitle: association.callingAeTitle,
    sopClassUid,
    sopInstanceUid,
    transferSyntaxUid: context.transferSyntax,
    dataset
  }
  try {
    message.taken = true
    const outcome = await association.onStore(request)
    if (!isValidStatus(outcome?.status))
      throw new Error(`onStore answered an invalid status ${String(outcome?.status)}`)
    if (outcome.status === DIMSE_STATUS.success) log.debug({ sopInstanceUid, bytes: length }, 'C-STORE stored')
    else log.warn({ sopInstanceUid, status: outcome.status, errorComment: outcome.errorComment }, 'C-STORE refused')
    return outcome
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    const status = statusOfError(error)
    log.warn({ sopInstanceUid, status, err: error }, 'C-STORE failed')
    return { status, errorComment: message }
  }
}
