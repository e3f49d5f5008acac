/**
 * Thrown by every decoder in `protocol/` when bytes from the wire (or a file) are not a valid message.
 * The receiver resets the stream and counts the failure against the sender; it never crashes.
 */
export class MalformedMessageError extends Error {
  static override readonly name = 'MalformedMessageError'
  readonly code = 'RADMESH_MALFORMED_MESSAGE'
  constructor(message: string) {
    super(message)
    this.name = 'MalformedMessageError'
  }
}
