/**
 * The inspector's worker reads the Ed25519 key inside a peer id without @libp2p/peer-id (node/membership/peer-key.ts):
 * it must find the key the full parser finds, and nothing for what is not an Ed25519 peer id in its usual form.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ed25519RawKeyOfPeerId, signedByEd25519PeerId } from '../../node/membership/peer-key.ts'

test('finds the key @libp2p/peer-id finds, for many Ed25519 peer ids', async () => {
  for (let i = 0; i < 200; i++) {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const expected = peerIdFromString(peerId).publicKey?.raw
    assert.equal(ed25519RawKeyOfPeerId(peerId), expected, peerId)
  }
})

test('finds nothing in other peer ids, changed ones and garbage', async () => {
  const ed = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
  for (const peerId of [secp, `${ed}1`, ed.slice(0, -1), `${ed.slice(0, -1)}0`, '12D3KooW', '', 'Qm'.repeat(23)]) {
    assert.is(ed25519RawKeyOfPeerId(peerId), undefined, peerId)
  }
})

test('checks a signature by the key inside the peer id, and no other', async () => {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const message = new TextEncoder().encode('a case record')
  const signature = Buffer.from(await key.sign(message)).toString('base64url')
  assert.ok(signedByEd25519PeerId(peerId, message, signature))
  assert.not.ok(signedByEd25519PeerId(other, message, signature))
  assert.not.ok(signedByEd25519PeerId(peerId, new TextEncoder().encode('another record'), signature))
  assert.not.ok(signedByEd25519PeerId(peerId, message, signature.slice(0, -2)))
})

test.run()
