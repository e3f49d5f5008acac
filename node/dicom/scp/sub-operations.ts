/**
 * The C-STORE sub-operations of a C-MOVE (on an association the node opens to the destination) or of a C-GET
 * (on the SCU's own association): each instance sent as stored, on a presentation context for its SOP class in
 * its own transfer syntax, one at a time, with the progress reported after each. A C-CANCEL stops them between
 * two instances; a broken association fails the one under way and leaves the rest not sent.
 */
import type { Logger } from '../../log.ts'
import { DIMSE_STATUS } from '../dictionary.ts'
import type { Command } from '../dimse/command.ts'
import type { PresentationContextProposal } from '../dimse/pdu.ts'
import { ScuAssociation } from '../scu/association.ts'

/** A stored instance to send: its UIDs, its transfer syntax, and its data set's bytes as they are read. */
export interface RetrieveInstance {
  studyUid: string
  seriesUid: string
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
  /** the data set (after the File Meta Information), as stored */
  dataset(): AsyncIterable<Uint8Array>
}

/** A C-MOVE destination the node knows. */
export interface Destination {
  aeTitle: string
  host: string
  port: number
}

/** A presentation context on which a C-STORE may go. */
export interface StoreContext {
  id: number
}

/** C-STOREs on the association a C-GET came on. */
export interface SubOperations {
  /** the context the SCU accepted this SOP class in this syntax on, with the SCP role */
  contextFor(sopClassUid: string, transferSyntaxUid: string): StoreContext | undefined
  store(context: StoreContext, request: StoreRequestFields, dataset: AsyncIterable<Uint8Array>): Promise<Command>
}

type StoreRequestFields = Pick<
  Command,
  'affectedSopClassUid' | 'affectedSopInstanceUid' | 'priority' | 'moveOriginatorAeTitle' | 'moveOriginatorMessageId'
>

export interface SendOptions {
  /** C-MOVE: where to, and as whom */
  destination?: Destination
  callingAeTitle?: string
  /** C-GET */
  here?: SubOperations
  originator?: { aeTitle: string; messageId: number }
  signal: AbortSignal
  log: Logger
  progress(status: 'completed' | 'failed' | 'warning'): Promise<void>
}

export interface SendOutcome {
  sent: RetrieveInstance[]
  failed: RetrieveInstance[]
  /** not attempted: canceled, or the association broke */
  notSent: RetrieveInstance[]
  canceled: boolean
  /** the first reason a sub-operation failed */
  problem?: string
}

/** Presentation contexts an association may propose (ids 1, 3, … 255). */
const MAX_CONTEXTS = 128

const pairKey = (i: Pick<RetrieveInstance, 'sopClassUid' | 'transferSyntaxUid'>): string =>
  `${i.sopClassUid} ${i.transferSyntaxUid}`

/** One context per SOP class and transfer syntax the instances are stored in, each proposing that syntax alone. */
export function contextsFor(instances: readonly RetrieveInstance[]): PresentationContextProposal[] {
  const pairs = new Map<string, PresentationContextProposal>()
  for (const instance of instances) {
    const key = pairKey(instance)
    if (pairs.has(key) || pairs.size >= MAX_CONTEXTS) continue
    pairs.set(key, {
      id: pairs.size * 2 + 1,
      abstractSyntax: instance.sopClassUid,
      transferSyntaxes: [instance.transferSyntaxUid]
    })
  }
  return [...pairs.values()]
}

const statusOf = (status: number | undefined): 'completed' | 'failed' | 'warning' =>
  status === DIMSE_STATUS.success
    ? 'completed'
    : status !== undefined && (status & 0xf000) === 0xb000
      ? 'warning'
      : 'failed'

export async function sendInstances(instances: RetrieveInstance[], options: SendOptions): Promise<SendOutcome> {
  const outcome: SendOutcome = { sent: [], failed: [], notSent: [], canceled: false }
  if (instances.length === 0) return outcome
  let here = options.here
  let scu: ScuAssociation | undefined
  const { destination } = options
  if (destination !== undefined) {
    try {
      scu = await ScuAssociation.open({
        host: destination.host,
        port: destination.port,
        calledAeTitle: destination.aeTitle,
        callingAeTitle: options.callingAeTitle ?? '',
        contexts: contextsFor(instances)
      })
    } catch (error) {
      outcome.notSent = instances
      outcome.problem = `${destination.aeTitle}: ${(error as Error).message}`
      return outcome
    }
    const association = scu
    here = {
      contextFor: (sopClassUid, syntax) => association.contextFor(sopClassUid, syntax),
      store: async (context, request, dataset) => {
        const accepted = association.accepted.find(c => c.id === context.id)
        if (accepted === undefined) throw new Error('no such context')
        return await association.store(accepted, request, dataset)
      }
    }
  }
  if (here === undefined) throw new Error('sendInstances: no destination and no association')
  const to = destination?.aeTitle ?? 'the SCU'
  const { originator } = options
  try {
    for (const [i, instance] of instances.entries()) {
      if (options.signal.aborted) {
        outcome.canceled = true
        outcome.notSent = instances.slice(i)
        break
      }
      const context = here.contextFor(instance.sopClassUid, instance.transferSyntaxUid)
      if (context === undefined) {
        // The error comment holds 64 characters: the syntax, the SOP class in the log.
        outcome.problem ??= `${to} accepts no context in ${instance.transferSyntaxUid}`
        const { sopClassUid, transferSyntaxUid } = instance
        options.log.warn({ to, sopClassUid, transferSyntaxUid }, 'C-STORE sub-operation: no presentation context')
        outcome.failed.push(instance)
        await options.progress('failed')
        continue
      }
      const request: StoreRequestFields = {
        affectedSopClassUid: instance.sopClassUid,
        affectedSopInstanceUid: instance.sopInstanceUid,
        priority: 0,
        ...(originator === undefined
          ? {}
          : { moveOriginatorAeTitle: originator.aeTitle, moveOriginatorMessageId: originator.messageId })
      }
      let status: 'completed' | 'failed' | 'warning'
      try {
        const response = await here.store(context, request, instance.dataset())
        status = statusOf(response.status)
        if (status === 'failed') {
          const hex = (response.status ?? 0).toString(16).padStart(4, '0')
          const why = response.errorComment === undefined ? '' : `: ${response.errorComment}`
          outcome.problem ??= `${to} answered C-STORE 0x${hex}${why}`
        }
      } catch (error) {
        outcome.problem ??= `${to}: ${(error as Error).message}`
        outcome.failed.push(instance)
        outcome.notSent = instances.slice(i + 1)
        options.log.warn({ err: error, to, sopInstanceUid: instance.sopInstanceUid }, 'C-STORE sub-operation failed')
        break
      }
      if (status === 'failed') outcome.failed.push(instance)
      else outcome.sent.push(instance)
      await options.progress(status)
    }
  } finally {
    await scu?.release().catch(() => {})
  }
  return outcome
}
