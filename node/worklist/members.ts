/**
 * The `members` document of the worklist, which every member holds: member certificates (each node
 * publishes its own, so every member can check the role of an author it was never connected to) and
 * radiologists' duty shifts. Certificates published here make their members known to the registry.
 */
import type { Logger } from 'pino'
import type * as Y from 'yjs'
import { recordKey, type Shift, type WorklistRecord } from '../../protocol/collab/records.ts'
import { MEMBERS_DOC } from '../../protocol/collab/sync.ts'
import type { MemberCertificate } from '../../protocol/membership/index.ts'
import type { Documents } from '../crdt/documents.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { arrivedRecords, recordsOf, storedRecords } from './records.ts'

/** The kinds of record the members document holds; every other kind is in a case's document. */
export const MEMBERS_KINDS = new Set(['member', 'duty'])

export interface MembersOptions {
  documents: Documents
  identity: Identity
  registry: MembershipRegistry
  log: Logger
  /** called with the records that reached the document from elsewhere (a peer) or were written here */
  onChange: (changed: WorklistRecord[]) => void
}

export class Members {
  private readonly o: MembersOptions
  /** records of the members document */
  private readonly records = new Map<string, WorklistRecord>()
  /** member certificates published in the members document, the latest-expiring one per member */
  private readonly certificates = new Map<string, MemberCertificate>()
  private doc: Y.Doc | undefined

  constructor(options: MembersOptions) {
    this.o = options
  }

  /** The document, once `open` has run. */
  get document(): Y.Doc | undefined {
    return this.doc
  }

  /** Opens the document, checks what it holds and watches it. */
  async open(): Promise<void> {
    const { documents, registry, log } = this.o
    const doc = await documents.open(MEMBERS_DOC)
    this.doc = doc
    for (const [key, record] of await storedRecords(doc, registry.trust, log, 'member')) this.records.set(key, record)
    this.rememberCertificates([...this.records.values()])
    await this.learnMembers([...this.records.values()])
    recordsOf(doc).observe(event => {
      this.onDocumentChange(event.keysChanged)
    })
  }

  private onDocumentChange(keys: Set<string>): void {
    const changed = arrivedRecords(this.doc as Y.Doc, keys, this.records, this.o.log, 'member')
    if (changed.length === 0) return
    this.rememberCertificates(changed)
    this.learnMembers(changed).catch(error => {
      this.o.log.warn({ err: error }, 'could not record a member certificate from the worklist')
    })
    this.o.onChange(changed)
  }

  private rememberCertificates(records: WorklistRecord[]): void {
    for (const record of records) {
      if (record.kind !== 'member') continue
      const known = this.certificates.get(record.certificate.peerId)
      if (known === undefined || Date.parse(known.expiresAt) < Date.parse(record.certificate.expiresAt)) {
        this.certificates.set(record.certificate.peerId, record.certificate)
      }
    }
  }

  /** Certificates published in the worklist make their members known to the registry (roles, wrap keys). */
  private async learnMembers(records: WorklistRecord[]): Promise<void> {
    for (const record of records) {
      if (record.kind !== 'member' || record.certificate.peerId === this.o.identity.peerId) continue
      const known = this.o.registry.certificateOf(record.certificate.peerId)
      if (known === undefined || Date.parse(known.expiresAt) < Date.parse(record.certificate.expiresAt)) {
        await this.o.registry.recordVerified(record.certificate)
      }
    }
  }

  /** Adds a record of a kind in MEMBERS_KINDS (once); resolves when it is on disk. */
  async put(record: WorklistRecord): Promise<void> {
    const key = recordKey(record)
    const map = recordsOf(this.doc as Y.Doc)
    if (map.has(key)) return
    await this.o.documents.change(MEMBERS_DOC, () => {
      map.set(key, record)
    })
  }

  /** The latest duty record of each radiologist. */
  shifts(): Map<string, Shift[]> {
    const latest = new Map<string, { at: string; shifts: Shift[] }>()
    for (const record of this.records.values()) {
      if (record.kind !== 'duty') continue
      const known = latest.get(record.by)
      if (known === undefined || known.at < record.at) latest.set(record.by, { at: record.at, shifts: record.shifts })
    }
    return new Map([...latest].map(([peer, { shifts }]) => [peer, shifts]))
  }

  /** Certificates of every member published in the worklist. */
  memberCertificates(): MemberCertificate[] {
    return [...this.certificates.values()]
  }

  /** A member's certificate: as the registry knows it (a connection, or learnt from here), else as published here. */
  certificateOf(peerId: string): MemberCertificate | undefined {
    return this.o.registry.certificateOf(peerId) ?? this.certificates.get(peerId)
  }

  /** A member's name for people to read, or its peer id when this node knows no certificate for it. */
  nameOf(peerId: string): string {
    return this.certificateOf(peerId)?.name ?? peerId
  }
}
