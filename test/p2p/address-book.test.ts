/**
 * The address book: a member's signed record of its addresses is taken by another member only when it is
 * newer, unexpired, signed by that member's key and carried with a certificate of the consortium that is not
 * revoked; it survives a restart; a revoked member's record is dropped. The wire format's limits hold.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Identity } from '../../node/identity/keys.ts'
import {
  admit,
  type ConsortiumDir,
  createConsortium,
  openConsortium,
  revoke
} from '../../node/membership/consortium.ts'
import { generateX25519 } from '../../node/membership/crypto.ts'
import { MembershipRegistry } from '../../node/membership/registry.ts'
import { trustFrom } from '../../node/membership/trust.ts'
import { AddressBook } from '../../node/p2p/address-book.ts'
import { dialableAddrs } from '../../node/p2p/address-spread.ts'
import { openDatabase } from '../../node/store/database.ts'
import { asPeerIdString } from '../../protocol/ids.ts'
import {
  ADDRESS_RECORD_LIFETIME_MS,
  type AddressEntry,
  decodeAddressList,
  encodeAddressList,
  MAX_ADDRESS_ENTRIES_PER_MESSAGE,
  MAX_ADDRESSES_PER_RECORD,
  type MemberCertificate
} from '../../protocol/membership/index.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

async function newConsortium(name: string): Promise<ConsortiumDir> {
  const dir = await tempDir()
  await createConsortium(dir, name)
  return await openConsortium(dir)
}

interface TestMember {
  identity: Identity
  certificate: MemberCertificate
  book: AddressBook
  registry: MembershipRegistry
  dbPath: string
  close(): Promise<void>
}

async function member(consortium: ConsortiumDir, name: string, lifetimeMs?: number): Promise<TestMember> {
  const privateKey = await generateKeyPair('Ed25519')
  const wrap = generateX25519()
  const peerId = asPeerIdString(peerIdFromPrivateKey(privateKey).toString())
  const identity: Identity = { privateKey, peerId, wrapPrivateKey: wrap.privateKey, wrapPublicKey: wrap.publicKeyRaw }
  const request = {
    v: 1,
    peerId,
    name,
    role: 'radiologist' as const,
    subspecialties: [],
    wrapKey: wrap.publicKeyRaw,
    requestedAt: new Date().toISOString()
  }
  const certificate = await admit(consortium, request, lifetimeMs === undefined ? {} : { lifetimeMs })
  return await open(consortium, identity, certificate, await tempDir())
}

async function open(
  consortium: ConsortiumDir,
  identity: Identity,
  certificate: MemberCertificate,
  dbPath: string
): Promise<TestMember> {
  const db = await openDatabase(dbPath)
  const registry = new MembershipRegistry(trustFrom(consortium.info), certificate, db)
  await registry.load()
  const book = new AddressBook(registry, identity, db)
  await book.load()
  return {
    identity,
    certificate,
    book,
    registry,
    dbPath,
    close: async () => {
      book.close()
      await db.close()
    }
  }
}

const entryOf = (m: TestMember): AddressEntry => {
  const record = m.book.own()
  if (record === undefined) throw new Error('no own record')
  return { record, certificate: m.certificate }
}

test("a member's signed record is taken, kept across a restart, and its addresses are dialable", async () => {
  const consortium = await newConsortium('Book')
  const [a, b] = [await member(consortium, 'A'), await member(consortium, 'B')]
  await a.book.issue([`/ip4/10.0.0.1/tcp/7400/p2p/${a.identity.peerId}`, '/ip4/10.0.0.1/tcp/7401/ws'])
  const learnt: string[] = []
  b.book.onUpdated((entry, from) => learnt.push(`${entry.record.peerId} from ${from}`))
  assert.equal(await b.book.add([entryOf(a)], 'carrier'), { added: [entryOf(a)], invalid: 0 })
  assert.equal(learnt, [`${a.identity.peerId} from carrier`])
  // The certificate came with the record: B knows A is a member without ever having met it.
  assert.ok(b.registry.isMember(a.identity.peerId))
  assert.equal(b.book.members(), [a.identity.peerId])
  await b.close()
  const reopened = await open(consortium, b.identity, b.certificate, b.dbPath)
  const record = reopened.book.recordOf(a.identity.peerId)
  assert.is(record?.seq, entryOf(a).record.seq)
  assert.equal(dialableAddrs(record ?? { peerId: a.identity.peerId, addrs: [] }).map(String), [
    '/ip4/10.0.0.1/tcp/7400',
    '/ip4/10.0.0.1/tcp/7401/ws'
  ])
  await reopened.close()
  await a.close()
})

test('a record with a bad signature, or with a certificate of another consortium, is invalid', async () => {
  const consortium = await newConsortium('Book')
  const [a, b] = [await member(consortium, 'A'), await member(consortium, 'B')]
  await a.book.issue(['/ip4/10.0.0.1/tcp/7400'])
  const good = entryOf(a)
  const moved = { ...good, record: { ...good.record, addrs: ['/ip4/203.0.113.66/tcp/7400'] } }
  assert.is((await b.book.add([moved])).invalid, 1)
  const foreign = await member(await newConsortium('Other'), 'F')
  await foreign.book.issue(['/ip4/10.0.0.9/tcp/7400'])
  assert.is((await b.book.add([entryOf(foreign)])).invalid, 1)
  // A record signed by one member, carried with another member's certificate, does not decode as an entry.
  assert.throws(
    () => decodeAddressList(encodeAddressList([{ record: good.record, certificate: b.certificate }])),
    /certificate is for/
  )
  assert.is(b.book.recordOf(a.identity.peerId), undefined)
  assert.not.ok(b.registry.isMember(foreign.identity.peerId))
  for (const m of [a, b, foreign]) await m.close()
})

test('an older or equal sequence number, an expired record or an expired member is of no use, and no fault', async () => {
  const consortium = await newConsortium('Book')
  const [a, b] = [await member(consortium, 'A'), await member(consortium, 'B')]
  const now = Date.now()
  await a.book.issue(['/ip4/10.0.0.1/tcp/7400'], now)
  const first = entryOf(a)
  await a.book.issue(['/ip4/10.0.0.2/tcp/7400'], now + 1000)
  const second = entryOf(a)
  assert.ok(second.record.seq > first.record.seq)
  assert.is((await b.book.add([second])).added.length, 1)
  assert.equal(await b.book.add([first]), { added: [], invalid: 0 })
  assert.equal(await b.book.add([second]), { added: [], invalid: 0 })
  assert.equal(b.book.recordOf(a.identity.peerId)?.addrs, ['/ip4/10.0.0.2/tcp/7400'])
  // Expired: signed long ago.
  const c = await member(consortium, 'C')
  await c.book.issue(['/ip4/10.0.0.3/tcp/7400'], now - ADDRESS_RECORD_LIFETIME_MS - 1)
  assert.equal(await b.book.add([entryOf(c)]), { added: [], invalid: 0 })
  assert.is(await b.book.verdict(entryOf(c)), 'expired')
  // A member whose certificate has expired is no longer a member.
  const d = await member(consortium, 'D', 1)
  await new Promise(resolve => setTimeout(resolve, 5))
  await d.book.issue(['/ip4/10.0.0.4/tcp/7400'])
  assert.is(await b.book.verdict(entryOf(d)), 'not-a-member')
  for (const m of [a, b, c, d]) await m.close()
})

test("a revoked member's record is refused, and dropped from memory and disk", async () => {
  const consortium = await newConsortium('Book')
  const [a, b] = [await member(consortium, 'A'), await member(consortium, 'B')]
  await a.book.issue(['/ip4/10.0.0.1/tcp/7400'])
  await b.book.add([entryOf(a)])
  const revocation = await revoke(consortium, a.identity.peerId)
  assert.is((await b.registry.addRevocations([revocation])).added.length, 1)
  await new Promise(resolve => setImmediate(resolve))
  assert.is(b.book.recordOf(a.identity.peerId), undefined)
  assert.equal(b.book.all(), [])
  await a.book.issue(['/ip4/10.0.0.5/tcp/7400'])
  assert.equal(await b.book.add([entryOf(a)]), { added: [], invalid: 0 })
  await b.close()
  const reopened = await open(consortium, b.identity, b.certificate, b.dbPath)
  assert.is(reopened.book.recordOf(a.identity.peerId), undefined)
  for (const m of [a, reopened]) await m.close()
})

test('a node that lost its book issues records above the sequence others hold of it', async () => {
  const consortium = await newConsortium('Book')
  const [a, b] = [await member(consortium, 'A'), await member(consortium, 'B')]
  await a.book.issue(['/ip4/10.0.0.1/tcp/7400'], Date.now() + 3_600_000)
  const held = entryOf(a)
  await b.book.add([held])
  const fresh = await open(consortium, a.identity, a.certificate, await tempDir())
  assert.is((await fresh.book.add([held])).added.length, 0)
  const record = await fresh.book.issue(['/ip4/10.0.0.7/tcp/7400'])
  assert.ok(record.seq > held.record.seq)
  assert.is((await b.book.add([{ record, certificate: a.certificate }])).added.length, 1)
  for (const m of [a, b, fresh]) await m.close()
})

test('oversized: too many addresses, too many entries or too many bytes are refused before use', async () => {
  const consortium = await newConsortium('Book')
  const a = await member(consortium, 'A')
  await a.book.issue(Array.from({ length: MAX_ADDRESSES_PER_RECORD + 5 }, (_, i) => `/ip4/10.0.0.${i}/tcp/7400`))
  const entry = entryOf(a)
  assert.is(entry.record.addrs.length, MAX_ADDRESSES_PER_RECORD, 'issue keeps at most the limit')
  const tooMany = { ...entry, record: { ...entry.record, addrs: [...entry.record.addrs, '/ip4/10.0.1.1/tcp/1'] } }
  const encoded = new TextEncoder().encode(JSON.stringify({ v: 1, type: 'addresses', entries: [tooMany] }))
  assert.throws(() => decodeAddressList(encoded), /more than 32 addresses/)
  const long = { ...entry, record: { ...entry.record, addrs: [`/dns4/${'a'.repeat(600)}/tcp/1`] } }
  assert.throws(() => decodeAddressList(encodeAddressList([long])), /at most 512 characters/)
  const entries = Array.from({ length: MAX_ADDRESS_ENTRIES_PER_MESSAGE + 1 }, () => entry)
  assert.throws(() => encodeAddressList(entries), RangeError)
  const raw = new TextEncoder().encode(JSON.stringify({ v: 1, type: 'addresses', entries }))
  assert.throws(() => decodeAddressList(raw), /more than 128 entries/)
  assert.throws(() => decodeAddressList(new Uint8Array(3 * 1024 * 1024 + 1)), /the limit is/)
  assert.equal(decodeAddressList(encodeAddressList([entry])), [entry])
  await a.close()
})

test('dialable addresses leave out those of another peer and those that do not parse', async () => {
  const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const addrs = dialableAddrs({
    peerId: asPeerIdString(self),
    addrs: [
      `/ip4/10.0.0.1/tcp/7400/p2p/${self}`,
      `/ip4/10.0.0.1/tcp/7400/p2p/${other}`,
      `/ip4/10.99.0.1/tcp/7400/p2p/${other}/p2p-circuit/p2p/${self}`,
      '/not/a/multiaddr'
    ]
  })
  assert.equal(addrs.map(String), ['/ip4/10.0.0.1/tcp/7400', `/ip4/10.99.0.1/tcp/7400/p2p/${other}/p2p-circuit`])
})

test.run()
