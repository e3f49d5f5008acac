/**
 * The host's reach parts, wired without starting it: UPnP only with `--upnp` (there is no UPnP gateway to test
 * against here, so this checks the wiring, not a port mapping), DCUtR always, and one `/p2p-circuit` listen
 * address per relay reservation wanted.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Identity } from '../../node/identity/keys.ts'
import { admit, createConsortium, openConsortium } from '../../node/membership/consortium.ts'
import { generateX25519 } from '../../node/membership/crypto.ts'
import { MembershipRegistry } from '../../node/membership/registry.ts'
import { trustFrom } from '../../node/membership/trust.ts'
import { createHost } from '../../node/p2p/host.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { openDatabase } from '../../node/store/database.ts'
import { asPeerIdString } from '../../protocol/ids.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

async function hostWith(options: { upnp?: boolean; reservations?: number }) {
  const dir = await tempDir()
  await createConsortium(dir, 'Host')
  const consortium = await openConsortium(dir)
  const privateKey = await generateKeyPair('Ed25519')
  const wrap = generateX25519()
  const peerId = asPeerIdString(peerIdFromPrivateKey(privateKey).toString())
  const identity: Identity = { privateKey, peerId, wrapPrivateKey: wrap.privateKey, wrapPublicKey: wrap.publicKeyRaw }
  const certificate = await admit(consortium, {
    v: 1,
    peerId,
    name: 'Host',
    role: 'site',
    subspecialties: [],
    wrapKey: wrap.publicKeyRaw,
    requestedAt: new Date().toISOString()
  })
  const db = await openDatabase(await tempDir())
  const registry = new MembershipRegistry(trustFrom(consortium.info), certificate, db)
  const host = await createHost({
    identity,
    registry,
    penalties: new PeerPenalties(),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    mdns: false,
    agentName: 'Host',
    log: pino({ level: 'silent' }),
    ...options
  })
  return { host, close: async () => db.close() }
}

test('--upnp adds the UPnP/NAT-PMP service, off by default; DCUtR is always there', async () => {
  const plain = await hostWith({})
  const services = plain.host.services as Record<string, unknown>
  assert.is(services['upnp'], undefined)
  assert.ok(services['dcutr'] !== undefined)
  await plain.close()
  const withUpnp = await hostWith({ upnp: true })
  assert.ok((withUpnp.host.services as Record<string, unknown>)['upnp'] !== undefined)
  await withUpnp.close()
})

test('each relay reservation wanted is one /p2p-circuit listen address', async () => {
  const { host, close } = await hostWith({ reservations: 2 })
  await host.start()
  try {
    // The circuit listeners are there (they find relays among connected members); nothing else changed.
    const listeners = (
      host as unknown as { components: { transportManager: { getListeners(): unknown[] } } }
    ).components.transportManager.getListeners()
    assert.is(listeners.length, 3, 'one TCP listener and two circuit listeners')
  } finally {
    await host.stop()
    await close()
  }
})

test.run()
