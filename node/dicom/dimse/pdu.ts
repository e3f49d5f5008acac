/**
 * The DICOM Upper Layer protocol (PS3.8 9.3), in three parts: its numbers (constants.ts), the association,
 * release and abort PDUs (associate.ts), and P-DATA-TF with the framing of every PDU (framing.ts).
 */
export * from './associate.ts'
export * from './constants.ts'
export * from './framing.ts'
