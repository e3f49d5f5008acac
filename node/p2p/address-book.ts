/**
 * The address book: the newest signed address record of each member (protocol/membership/addresses.ts), kept
 * on disk so a node that was away for days finds the others again from what it knew, and this node's own
 * record, signed with its identity key.
 *
 * A record is taken only when it is newer (a higher `seq`) than the one held, unexpired, signed by the key of
 * the peer it names, and carried with a certificate of this consortium for that peer that is not revoked. A
 * revoked member's record is dropped, from memory and disk. Forged entries (a signature or a certificate that
 * does not verify) are counted as invalid; old, expired or revoked ones are merely of no use.
 */
import type { AbstractSublevel } from 'abstract-level'
import { asPeerIdString, type PeerIdString } from '../../protocol/ids.ts'
import {
  ADDRESS_RECORD_LIFETIME_MS,
  type AddressEntry,
  type AddressRecord,
  addressRecordSigningBytes,
  decodeAddressEntry,
  MAX_ADDRESS_LENGTH,
  MAX_ADDRESSES_PER_RECORD
} from '../../protocol/membership/index.ts'
import type { Identity } from '../identity/keys.ts'
import { signedByPeer, toBase64url } from '../membership/crypto.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import type { Database } from '../store/database.ts'

type JsonSublevel = AbstractSublevel<Database, string | Uint8Array, string, unknown>

/** What an entry did to the book. */
export type AddressVerdict = 'added' | 'invalid' | 'not-newer' | 'expired' | 'not-a-member' | 'own'

export type AddressListener = (entry: AddressEntry, from: string | undefined) => void

export class AddressBook {
  private readonly registry: MembershipRegistry
  private readonly identity: Identity
  private readonly store: JsonSublevel
  private readonly entries = new Map<string, AddressEntry>()
  private readonly listeners = new Set<AddressListener>()
  /** the highest `seq` of this node's own record seen anywhere (a copy kept by others outlives a lost disk) */
  private ownSeq = 0
  private unsubscribe = (): void => {}

  constructor(registry: MembershipRegistry, identity: Identity, db: Database) {
    this.registry = registry
    this.identity = identity
    this.store = db.sublevel<string, unknown>('addresses', { valueEncoding: 'json' })
  }

  /** Loads what earlier runs learnt; entries that no longer verify, have expired or were revoked are deleted. */
  async load(now = Date.now()): Promise<void> {
    this.unsubscribe = this.registry.onRevoked(revocation => {
      void this.forget(revocation.peerId)
    })
    const stale: string[] = []
    for await (const [key, value] of this.store.iterator()) {
      try {
        const entry = decodeAddressEntry(value)
        if (entry.record.peerId === this.identity.peerId) {
          this.entries.set(key, entry)
          this.ownSeq = Math.max(this.ownSeq, entry.record.seq)
        } else if ((await this.verdict(entry, now)) === 'added') this.entries.set(key, entry)
        else stale.push(key)
      } catch {
        stale.push(key)
      }
    }
    for (const key of stale) await this.store.del(key)
  }

  close(): void {
    this.unsubscribe()
  }

  /** The newest record of `peerId`, if it is held and unexpired. */
  recordOf(peerId: string, now = Date.now()): AddressRecord | undefined {
    const entry = this.entries.get(peerId)
    return entry === undefined || Date.parse(entry.record.expiresAt) <= now ? undefined : entry.record
  }

  /** This node's own current record. */
  own(): AddressRecord | undefined {
    return this.entries.get(this.identity.peerId)?.record
  }

  /** Every unexpired entry of a current member (this node's own included): what is sent on contact. */
  all(now = Date.now()): AddressEntry[] {
    return [...this.entries.values()].filter(
      e => Date.parse(e.record.expiresAt) > now && this.registry.isMember(e.record.peerId, now)
    )
  }

  /** The members with a record here, but this node. */
  members(now = Date.now()): PeerIdString[] {
    return this.all(now)
      .map(e => e.record.peerId)
      .filter(peer => peer !== this.identity.peerId)
  }

  /** Calls `listener` with every entry new here (this node's own included); returns the unsubscribe. */
  onUpdated(listener: AddressListener): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  /** Verifies and keeps what is newer than what is held; `from` is the peer that sent them. */
  async add(
    incoming: AddressEntry[],
    from?: string,
    now = Date.now()
  ): Promise<{ added: AddressEntry[]; invalid: number }> {
    const added: AddressEntry[] = []
    let invalid = 0
    for (const entry of incoming) {
      const verdict = await this.verdict(entry, now)
      if (verdict === 'invalid') invalid++
      if (verdict === 'own') this.ownSeq = Math.max(this.ownSeq, entry.record.seq)
      if (verdict !== 'added') continue
      this.entries.set(entry.record.peerId, entry)
      await this.store.put(entry.record.peerId, entry)
      await this.registry.recordVerified(entry.certificate)
      added.push(entry)
    }
    for (const entry of added) for (const listener of this.listeners) listener(entry, from)
    return { added, invalid }
  }

  /** What `add` would do with an entry, checking the cheap things first. */
  async verdict(entry: AddressEntry, now = Date.now()): Promise<AddressVerdict> {
    const { record, certificate } = entry
    if (record.peerId === this.identity.peerId) return 'own'
    if (Date.parse(record.expiresAt) <= now) return 'expired'
    const held = this.entries.get(record.peerId)
    if (held !== undefined && held.record.seq >= record.seq) return 'not-newer'
    if (this.registry.isRevoked(record.peerId)) return 'not-a-member'
    const check = this.registry.check(certificate, record.peerId, now)
    if (!check.ok) return check.code === 'expired' || check.code === 'not-yet-valid' ? 'not-a-member' : 'invalid'
    if (!(await signedByPeer(record.peerId, addressRecordSigningBytes(record), record.signature))) return 'invalid'
    return 'added'
  }

  /**
   * Signs and keeps a new record of this node's own addresses (its `seq` above every earlier one, here or
   * elsewhere), and tells the listeners, who send it to every member.
   */
  async issue(addrs: string[], now = Date.now()): Promise<AddressRecord> {
    const own = this.entries.get(this.identity.peerId)
    const seq = Math.max(now, this.ownSeq + 1, (own?.record.seq ?? 0) + 1)
    const unique = [...new Set(addrs)].filter(a => a.length <= MAX_ADDRESS_LENGTH).slice(0, MAX_ADDRESSES_PER_RECORD)
    const unsigned = {
      v: 1,
      peerId: asPeerIdString(this.identity.peerId),
      addrs: unique,
      seq,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + ADDRESS_RECORD_LIFETIME_MS).toISOString()
    }
    const signature = toBase64url(await this.identity.privateKey.sign(addressRecordSigningBytes(unsigned)))
    const entry: AddressEntry = { record: { ...unsigned, signature }, certificate: this.registry.self }
    this.ownSeq = seq
    this.entries.set(this.identity.peerId, entry)
    await this.store.put(this.identity.peerId, entry)
    for (const listener of this.listeners) listener(entry, undefined)
    return entry.record
  }

  private async forget(peerId: string): Promise<void> {
    if (!this.entries.delete(peerId)) return
    await this.store.del(peerId)
  }
}
