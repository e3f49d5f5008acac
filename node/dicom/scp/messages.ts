/**
 * DIMSE messages put together from the PDVs of an association (PS3.8 9.3.5, E.2): a command set gathered until
 * its last fragment (at most MAX_COMMAND_LENGTH) and decoded, then its data set: a C-STORE's fragments go to the
 * sink opened for it as slices of the TCP reads they came in (tiny ones batched), never held here; a C-FIND,
 * C-MOVE or C-GET identifier is kept whole (at most MAX_IDENTIFIER_LENGTH) for its operation.
 */
import type { Logger } from '../../log.ts'
import { type Command, COMMAND_FIELD, decodeCommand, NO_DATA_SET } from '../dimse/command.ts'
import { DicomProtocolError } from '../dimse/errors.ts'
import { PDV_COMMAND, PDV_LAST } from '../dimse/pdu.ts'
import { BATCH_BELOW, BATCH_LENGTH, MAX_COMMAND_LENGTH, MAX_IDENTIFIER_LENGTH } from './limits.ts'
import type { Context } from './negotiation.ts'
import type { DatasetSink, Message, StoreHeader } from './operations.ts'

/**
 * A command whose data set is still coming: a C-STORE's goes to its sink, a Query/Retrieve identifier is kept
 * (at most MAX_IDENTIFIER_LENGTH), any other is read and dropped.
 */
interface Incoming<D> {
  command: Command
  context: Context
  sink: DatasetSink<D> | undefined
  identifier: Buffer[] | undefined
  length: number
}

const IDENTIFIER_COMMANDS: ReadonlySet<number> = new Set([
  COMMAND_FIELD.cFindRq,
  COMMAND_FIELD.cMoveRq,
  COMMAND_FIELD.cGetRq
])

/** What the assembler needs of its connection. */
export interface AssemblerHooks<D> {
  openDataset(header: StoreHeader): DatasetSink<D>
  callingAeTitle(): string | undefined
  log: Logger
  /** a message whose command, and data set if it has one, are in */
  message(message: Message<D>): void
  /** the sink asked to wait: pause the socket until it drains */
  waitForDrain(sink: DatasetSink<D>): void
}

export class MessageAssembler<D> {
  readonly #hooks: AssemblerHooks<D>
  #commandParts: Buffer[] = []
  #commandLength = 0
  #commandContext: Context | undefined
  #incoming: Incoming<D> | undefined
  /** small fragments of the incoming data set, not yet written to its sink */
  #batch: Buffer | undefined
  #batchLength = 0

  constructor(hooks: AssemblerHooks<D>) {
    this.#hooks = hooks
  }

  /** True inside a command or a data set: the SCU owes us bytes. */
  get midway(): boolean {
    return this.#incoming !== undefined || this.#commandParts.length > 0
  }

  /** Gives up what is held: the command so far, the batch, and the incoming data set (its sink released). */
  release(): void {
    this.#commandParts = []
    this.#batch = undefined
    this.#batchLength = 0
    const incoming = this.#incoming
    this.#incoming = undefined
    incoming?.sink?.release()
  }

  /** A PDV's part (see PduSink), on its accepted presentation context. Throws DicomProtocolError. */
  pdv(context: Context, control: number, part: Buffer, end: boolean): void {
    const last = end && (control & PDV_LAST) !== 0
    if ((control & PDV_COMMAND) !== 0) {
      if (this.#incoming !== undefined)
        throw new DicomProtocolError('bad-pdv', 'a command PDV before the data set of the command before it ended')
      if (this.#commandContext !== undefined && this.#commandContext !== context)
        throw new DicomProtocolError('bad-pdv', 'one command on two presentation contexts')
      this.#commandContext = context
      this.#commandLength += part.length
      if (this.#commandLength > MAX_COMMAND_LENGTH)
        throw new DicomProtocolError('too-long', `command set over ${MAX_COMMAND_LENGTH} bytes`)
      this.#commandParts.push(part)
      if (last) this.#commandReceived(context)
      return
    }
    const incoming = this.#incoming
    if (incoming === undefined) throw new DicomProtocolError('bad-pdv', 'a data set PDV with no command before it')
    if (incoming.context !== context)
      throw new DicomProtocolError('bad-pdv', 'a data set on another presentation context than its command')
    if (part.length > 0) {
      incoming.length += part.length
      if (incoming.sink !== undefined) this.#write(incoming.sink, part)
      if (incoming.identifier !== undefined) {
        if (incoming.length > MAX_IDENTIFIER_LENGTH)
          throw new DicomProtocolError('too-long', `identifier over ${MAX_IDENTIFIER_LENGTH} bytes`)
        incoming.identifier.push(part)
      }
    }
    if (!last) return
    this.#incoming = undefined
    const { command, sink, length } = incoming
    if (sink !== undefined) this.#flushBatch(sink)
    const identifier = incoming.identifier === undefined ? undefined : Buffer.concat(incoming.identifier, length)
    this.#hooks.message({ command, context, dataset: sink?.finish(), sink, length, taken: false, identifier })
  }

  /**
   * A data set's fragment to its sink. Small fragments (an SCU may send PDVs of a byte or two) are copied into
   * one batch first, so the sink's cost per write (an object, a cipher call) is paid per 64 KiB at most.
   */
  #write(sink: DatasetSink<D>, part: Buffer): void {
    if (part.length >= BATCH_BELOW) {
      this.#flushBatch(sink)
      if (!sink.write(part)) this.#hooks.waitForDrain(sink)
      return
    }
    if (this.#batch !== undefined && this.#batchLength + part.length > BATCH_LENGTH) this.#flushBatch(sink)
    this.#batch ??= Buffer.allocUnsafe(BATCH_LENGTH)
    part.copy(this.#batch, this.#batchLength)
    this.#batchLength += part.length
  }

  /** Hands the batch to the sink, which may keep it: the next batch is a new buffer. */
  #flushBatch(sink: DatasetSink<D>): void {
    const batch = this.#batch
    if (batch === undefined || this.#batchLength === 0) return
    const length = this.#batchLength
    this.#batch = undefined
    this.#batchLength = 0
    if (!sink.write(batch.subarray(0, length))) this.#hooks.waitForDrain(sink)
  }

  #commandReceived(context: Context): void {
    const bytes =
      this.#commandParts.length === 1
        ? (this.#commandParts[0] as Buffer)
        : Buffer.concat(this.#commandParts, this.#commandLength)
    this.#commandParts = []
    this.#commandLength = 0
    this.#commandContext = undefined
    let command: Command
    try {
      command = decodeCommand(bytes)
    } catch (error) {
      if (!(error instanceof DicomProtocolError)) throw error
      // Nothing to answer (no message id), and not worth the association: the SCU times the operation out.
      this.#hooks.log.warn(
        { reason: error.message, callingAeTitle: this.#hooks.callingAeTitle() },
        'DIMSE command not understood, ignored'
      )
      return
    }
    if (command.commandDataSetType === NO_DATA_SET) {
      this.#hooks.message({ command, context, dataset: undefined, sink: undefined, length: 0, taken: false })
      return
    }
    // A C-STORE's data set goes to its sink, a Query/Retrieve identifier is kept; any other is read and dropped.
    const identifier = IDENTIFIER_COMMANDS.has(command.commandField) ? [] : undefined
    const sink =
      command.commandField === COMMAND_FIELD.cStoreRq
        ? this.#hooks.openDataset({
            callingAeTitle: this.#hooks.callingAeTitle() ?? '',
            sopClassUid: command.affectedSopClassUid ?? '',
            sopInstanceUid: command.affectedSopInstanceUid ?? '',
            transferSyntaxUid: context.transferSyntax
          })
        : undefined
    this.#incoming = { command, context, sink, identifier, length: 0 }
  }
}
