/**
 * @packageDocumentation
 * Reports into the site's RIS over HL7 v2: each FINAL report and each addendum as an ORU^R01 (v2.5.1,
 * `oru.ts`), kept in an outbox on disk (`outbox.ts`) and sent over MLLP with an ACK wait and retries
 * (`sender.ts`). The layout field by field, the outbox and the retries: docs/HL7.md.
 */
export { type Ack, escapeText, HL7_VERSION, oruR01, parseAck, type ResultStatus, unescapeText } from './oru.ts'
export { Hl7Outbox, type OutboxEntry, outboxKey } from './outbox.ts'
export { backoff, Hl7Sender, type RisAddress } from './sender.ts'
