/**
 * What one association adds for Query/Retrieve: the operation running (so a C-CANCEL reaches it while it
 * runs: commands that steer it are taken as they arrive, never queued behind it), the responses it sends
 * (drained before the next goes), and, for C-GET, the C-STOREs it sends the SCU and the responses they await.
 */
import type { Socket } from 'node:net'
import type { Logger } from '../../log.ts'
import { DIMSE_STATUS } from '../dictionary.ts'
import { type Command, COMMAND_FIELD, DATA_SET_PRESENT, NO_DATA_SET, RESPONSE_BIT } from '../dimse/command.ts'
import { sendMessage } from '../scu/send.ts'
import type { Context } from './negotiation.ts'
import { find, type QueryChannel, type QueryRetrieveProvider, retrieve } from './query-retrieve.ts'
import type { SubOperations } from './sub-operations.ts'

/** A C-STORE sub-operation's response must come this soon (the SCU writes one object to its disk). */
const SUB_OPERATION_TIMEOUT_MS = 120_000

export interface SessionParts {
  socket: Socket
  aeTitle: string
  callingAeTitle: () => string
  contexts: ReadonlyMap<number, Context>
  /** the SCU's maximum length received */
  peerMaxPduLength: () => number
  log: Logger
}

export class QuerySession {
  readonly #parts: SessionParts
  #running: { messageId: number; controller: AbortController } | undefined
  readonly #awaiting = new Map<number, { resolve: (command: Command) => void; reject: (error: Error) => void }>()
  #nextMessageId = 1

  constructor(parts: SessionParts) {
    this.#parts = parts
  }

  /**
   * Takes a command that steers the running operation: a C-CANCEL, or the response to one of our C-STOREs.
   * False for any other command (it is queued as usual).
   */
  take(command: Command): boolean {
    if (command.commandField === COMMAND_FIELD.cCancelRq) {
      if (this.#running?.messageId === command.messageIdBeingRespondedTo) this.#running?.controller.abort()
      return true
    }
    if ((command.commandField & RESPONSE_BIT) === 0) return false
    const id = command.messageIdBeingRespondedTo ?? -1
    const waiter = this.#awaiting.get(id)
    if (waiter === undefined) this.#parts.log.warn({ messageId: id }, 'DIMSE response to no request of ours, ignored')
    this.#awaiting.delete(id)
    waiter?.resolve(command)
    return true
  }

  /** The association is closing: whatever waits fails. */
  close(): void {
    this.#running?.controller.abort()
    for (const waiter of this.#awaiting.values()) waiter.reject(new Error('the association closed'))
    this.#awaiting.clear()
  }

  async run(command: Command, context: Context, identifier: Buffer | undefined, provider: QueryRetrieveProvider) {
    const controller = new AbortController()
    this.#running = { messageId: command.messageId ?? -1, controller }
    const channel = this.#channel(context, controller.signal)
    try {
      if (command.commandField === COMMAND_FIELD.cFindRq) {
        await find(command, context, identifier, channel, provider)
      } else {
        const operation = command.commandField === COMMAND_FIELD.cMoveRq ? 'move' : 'get'
        await retrieve(operation, command, context, identifier, channel, provider)
      }
    } catch (error) {
      // The archive failed (not the association, which closes on its own): the SCU is told, and may go on.
      if (this.#parts.socket.destroyed) throw error
      this.#parts.log.warn({ err: error }, 'Query/Retrieve operation failed')
      const failure: Command = {
        affectedSopClassUid: context.abstractSyntax,
        commandField: command.commandField | RESPONSE_BIT,
        messageIdBeingRespondedTo: command.messageId ?? 0,
        commandDataSetType: NO_DATA_SET,
        status: DIMSE_STATUS.cannotUnderstand,
        errorComment: 'unable to process: see the node log'
      }
      await channel.respond(failure)
    } finally {
      this.#running = undefined
    }
  }

  #channel(context: Context, signal: AbortSignal): QueryChannel {
    const { socket, log } = this.#parts
    return {
      aeTitle: this.#parts.aeTitle,
      callingAeTitle: this.#parts.callingAeTitle(),
      address: socket.remoteAddress,
      log,
      signal,
      respond: async (response, identifier) => {
        const dataset =
          identifier === undefined
            ? undefined
            : (async function* () {
                yield identifier
              })()
        await sendMessage(socket, context.id, response, dataset, this.#parts.peerMaxPduLength())
      },
      here: this.#subOperations()
    }
  }

  #subOperations(): SubOperations {
    return {
      contextFor: (sopClassUid, transferSyntaxUid) => {
        for (const context of this.#parts.contexts.values()) {
          const fits = context.abstractSyntax === sopClassUid && context.transferSyntax === transferSyntaxUid
          if (fits && context.scpRole === true) return context
        }
        return undefined
      },
      store: async (context, request, dataset) => {
        const messageId = this.#nextMessageId++ & 0xffff
        const answered = new Promise<Command>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.#awaiting.delete(messageId)
            reject(new Error(`no C-STORE response within ${SUB_OPERATION_TIMEOUT_MS / 1000} s`))
          }, SUB_OPERATION_TIMEOUT_MS)
          const done =
            <T>(settle: (value: T) => void) =>
            (value: T) => {
              clearTimeout(timer)
              settle(value)
            }
          this.#awaiting.set(messageId, { resolve: done(resolve), reject: done(reject) })
        })
        answered.catch(() => {})
        const command: Command = {
          ...request,
          commandField: COMMAND_FIELD.cStoreRq,
          messageId,
          commandDataSetType: DATA_SET_PRESENT
        }
        await sendMessage(this.#parts.socket, context.id, command, dataset, this.#parts.peerMaxPduLength())
        return await answered
      }
    }
  }
}
