/**
 * What this node knows about the consortium at run time: its own certificate, the members whose
 * certificates it has verified, and every revocation it has seen (persisted, so a restart forgets none).
 *
 * The handshake asks `check()` about a stranger's certificate; the gater asks `isMember()`; the revocation
 * protocol hands in what it receives with `addRevocations()`, which dispatches `onRevoked` listeners for each
 * revocation that is new here.
 */
import type { AbstractSublevel } from 'abstract-level'
import type { PeerIdString } from '../../protocol/ids.ts'
import {
  decodeCertificate,
  decodeRevocation,
  type MemberCertificate,
  type Revocation
} from '../../protocol/membership/index.ts'
import type { Database } from '../store/database.ts'
import { type CertificateCheck, checkCertificate, type ConsortiumTrust, isValidRevocation } from './trust.ts'

type JsonSublevel = AbstractSublevel<Database, string | Uint8Array, string, unknown>

export class MembershipRegistry {
  readonly trust: ConsortiumTrust
  readonly self: MemberCertificate
  private readonly revocations = new Map<string, Revocation>()
  private readonly members = new Map<string, MemberCertificate>()
  private readonly revocationStore: JsonSublevel
  private readonly memberStore: JsonSublevel
  private readonly revokedListeners = new Set<(revocation: Revocation) => void>()

  constructor(trust: ConsortiumTrust, self: MemberCertificate, db: Database) {
    this.trust = trust
    this.self = self
    this.revocationStore = db.sublevel<string, unknown>('revocations', { valueEncoding: 'json' })
    this.memberStore = db.sublevel<string, unknown>('members', { valueEncoding: 'json' })
  }

  /** Loads what earlier runs learnt. Records that no longer verify are skipped, never trusted. */
  async load(): Promise<void> {
    for await (const value of this.revocationStore.values()) {
      try {
        const revocation = decodeRevocation(value)
        if (isValidRevocation(revocation, this.trust)) this.revocations.set(revocation.peerId, revocation)
      } catch {}
    }
    for await (const value of this.memberStore.values()) {
      try {
        const certificate = decodeCertificate(value)
        // Checked as of its own issue time: the signature and consortium must hold; expiry is judged on use.
        if (checkCertificate(certificate, this.trust, Date.parse(certificate.issuedAt)).ok)
          this.members.set(certificate.peerId, certificate)
      } catch {}
    }
  }

  /** Everything the handshake verifies about a certificate presented by the authenticated peer `remotePeer`. */
  check(certificate: MemberCertificate, remotePeer: string, now = Date.now()): CertificateCheck {
    if (certificate.peerId !== remotePeer) {
      return {
        ok: false,
        code: 'peer-id-mismatch',
        reason: `certificate is for ${certificate.peerId}, presented by ${remotePeer}`
      }
    }
    const check = checkCertificate(certificate, this.trust, now)
    if (!check.ok) return check
    const revocation = this.revocations.get(remotePeer)
    if (revocation !== undefined) {
      return {
        ok: false,
        code: 'revoked',
        reason:
          `member "${certificate.name}" was revoked at ${revocation.revokedAt}` +
          `${revocation.reason === undefined ? '' : ` (${revocation.reason})`}`
      }
    }
    return { ok: true }
  }

  async recordVerified(certificate: MemberCertificate): Promise<void> {
    const known = this.members.get(certificate.peerId)
    this.members.set(certificate.peerId, certificate)
    if (known?.signature !== certificate.signature) await this.memberStore.put(certificate.peerId, certificate)
  }

  /** A peer is a member while it holds a verified, unexpired certificate and is not revoked. */
  isMember(peerId: string, now = Date.now()): boolean {
    if (peerId === this.self.peerId) return true
    const certificate = this.members.get(peerId)
    return certificate !== undefined && !this.revocations.has(peerId) && Date.parse(certificate.expiresAt) > now
  }

  isRevoked(peerId: string): boolean {
    return this.revocations.has(peerId)
  }

  certificateOf(peerId: string): MemberCertificate | undefined {
    return peerId === this.self.peerId ? this.self : this.members.get(peerId)
  }

  allRevocations(): Revocation[] {
    return [...this.revocations.values()]
  }

  /**
   * Verifies and stores revocations; returns those that were new here (the caller forwards only those).
   * Revocations of another consortium or with a bad signature are dropped and counted.
   */
  async addRevocations(incoming: Revocation[]): Promise<{ added: Revocation[]; invalid: number }> {
    const added: Revocation[] = []
    let invalid = 0
    for (const revocation of incoming) {
      if (this.revocations.has(revocation.peerId)) continue
      if (!isValidRevocation(revocation, this.trust)) {
        invalid++
        continue
      }
      await this.revocationStore.put(revocation.peerId, revocation)
      this.revocations.set(revocation.peerId, revocation)
      added.push(revocation)
    }
    for (const revocation of added) {
      for (const listener of this.revokedListeners) listener(revocation)
    }
    return { added, invalid }
  }

  /** Calls `listener` for every revocation that is new here; returns the function that unsubscribes. */
  onRevoked(listener: (revocation: Revocation) => void): () => void {
    this.revokedListeners.add(listener)
    return () => {
      this.revokedListeners.delete(listener)
    }
  }

  /** Members (other than this node) whose certificates have expired by `now`. */
  expiredMembers(now = Date.now()): PeerIdString[] {
    return [...this.members.values()].filter(c => Date.parse(c.expiresAt) <= now).map(c => c.peerId)
  }
}
