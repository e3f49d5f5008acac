/**
 * Certificates and revocations signed by the consortium root, checked as the handshake checks them.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { asPeerIdString } from '../../protocol/ids.ts'
import type { JoinRequest } from '../../protocol/membership/index.ts'
import {
  admit,
  type ConsortiumDir,
  createConsortium,
  openConsortium,
  revoke
} from '../../node/membership/consortium.ts'
import { checkCertificate, isValidRevocation, trustFrom, CLOCK_SKEW_MS } from '../../node/membership/trust.ts'
import { generateX25519 } from '../../node/membership/crypto.ts'
import { CertificateError } from '../../node/errors.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

async function newConsortium(name: string): Promise<ConsortiumDir> {
  const dir = await tempDir()
  await createConsortium(dir, name)
  return await openConsortium(dir)
}

const request: JoinRequest = {
  v: 1,
  peerId: asPeerIdString('12D3KooWCVqUUU2Q7P7W871U4ipow2dZHe7rMC9i3V2s5YFd5QTX'),
  name: 'Dr A',
  role: 'radiologist',
  subspecialties: ['neuro'],
  wrapKey: generateX25519().publicKeyRaw,
  requestedAt: new Date().toISOString()
}

test('a certificate admitted by the root checks out; altered, it does not', async () => {
  const consortium = await newConsortium('A')
  const trust = trustFrom(consortium.info)
  const certificate = await admit(consortium, request)
  assert.equal(checkCertificate(certificate, trust), { ok: true })
  for (const altered of [
    { ...certificate, role: 'site' as const },
    { ...certificate, name: 'Dr B' },
    { ...certificate, subspecialties: ['neuro', 'msk'] },
    { ...certificate, expiresAt: '2099-01-01T00:00:00.000Z' }
  ]) {
    const check = checkCertificate(altered, trust)
    assert.is(check.ok ? 'ok' : check.code, 'bad-signature')
  }
})

test('a certificate of another consortium is wrong-consortium, even when its id is copied', async () => {
  const ours = await newConsortium('Ours')
  const theirs = await newConsortium('Theirs')
  const foreign = await admit(theirs, request)
  const check = checkCertificate(foreign, trustFrom(ours.info))
  assert.is(check.ok ? 'ok' : check.code, 'wrong-consortium')
  const disguised = checkCertificate({ ...foreign, consortiumId: ours.info.id }, trustFrom(ours.info))
  assert.is(disguised.ok ? 'ok' : disguised.code, 'bad-signature')
})

test('validity is enforced at both ends, with clock skew allowed at the start only', async () => {
  const consortium = await newConsortium('A')
  const trust = trustFrom(consortium.info)
  const now = Date.now()
  const short = await admit(consortium, request, { now, lifetimeMs: 60_000 })
  assert.ok(checkCertificate(short, trust, now + 59_000).ok)
  const expired = checkCertificate(short, trust, now + 60_000)
  assert.is(expired.ok ? 'ok' : expired.code, 'expired')
  const future = await admit(consortium, request, { now: now + 2 * CLOCK_SKEW_MS })
  const early = checkCertificate(future, trust, now)
  assert.is(early.ok ? 'ok' : early.code, 'not-yet-valid')
  assert.ok(checkCertificate(await admit(consortium, request, { now: now + CLOCK_SKEW_MS / 2 }), trust, now).ok)
})

test('revocations verify only against their own root and only unaltered', async () => {
  const consortium = await newConsortium('A')
  const other = await newConsortium('B')
  const revocation = await revoke(consortium, request.peerId, 'left')
  assert.ok(isValidRevocation(revocation, trustFrom(consortium.info)))
  assert.not.ok(isValidRevocation(revocation, trustFrom(other.info)))
  assert.not.ok(
    isValidRevocation(
      { ...revocation, peerId: asPeerIdString('12D3KooWGZcqasqsxTkJFXgcNh3ANVDSfJJsbjYQab9oJ2MxXGzc') },
      trustFrom(consortium.info)
    )
  )
})

test('a consortium.json whose id does not match its root key is refused', async () => {
  const consortium = await newConsortium('A')
  const other = await newConsortium('B')
  try {
    trustFrom({ ...consortium.info, rootPublicKey: other.info.rootPublicKey })
    assert.unreachable('accepted')
  } catch (error) {
    assert.instance(error, CertificateError)
    assert.is((error as CertificateError).code, 'RADMESH_CERTIFICATE_INVALID')
  }
})

test.run()
