/**
 * A member's HOME: keys made once, 0600, loaded unchanged; revocations and verified members persist.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { homePaths } from '../../node/identity/home.ts'
import { loadIdentity } from '../../node/identity/keys.ts'
import { initHome, joinHome, loadMember } from '../../node/identity/member.ts'
import { admit, createConsortium, openConsortium, revoke } from '../../node/membership/consortium.ts'
import { MembershipRegistry } from '../../node/membership/registry.ts'
import { openDatabase } from '../../node/store/database.ts'
import { HomeError } from '../../node/errors.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

test('init makes 0600 keys and a join request; every load gives the same peer id', async () => {
  const home = join(await tempDir(), 'home')
  const request = await initHome(home, { name: 'Dr A', role: 'radiologist', subspecialties: ['neuro'] })
  for (const file of ['identity.key', 'wrap.key']) {
    assert.is(((await fs.stat(join(home, file))).mode & 0o777).toString(8), '600', file)
  }
  const paths = homePaths(home)
  const first = await loadIdentity(paths)
  const second = await loadIdentity(paths)
  assert.is(first.peerId, request.peerId)
  assert.is(second.peerId, request.peerId)
  assert.is(first.wrapPublicKey, request.wrapKey)
  const onDisk = JSON.parse(await fs.readFile(paths.joinRequest, 'utf8'))
  assert.is(onDisk.peerId, request.peerId)
  assert.equal(onDisk.subspecialties, ['neuro'])
})

test('loadMember refuses a HOME that is missing or not joined, with the right code', async () => {
  const root = await tempDir()
  for (const [home, code] of [
    [join(root, 'missing'), 'RADMESH_HOME_MISSING'],
    [join(root, 'unjoined'), 'RADMESH_NOT_JOINED']
  ] as const) {
    if (code === 'RADMESH_NOT_JOINED') await initHome(home, { name: 'X', role: 'site', subspecialties: [] })
    try {
      await loadMember(home)
      assert.unreachable(`${home} loaded`)
    } catch (error) {
      assert.instance(error, HomeError)
      assert.is((error as HomeError).code, code)
    }
  }
})

test('revocations and verified members survive a restart of the registry (real LevelDB)', async () => {
  const root = await tempDir()
  await createConsortium(join(root, 'c'), 'C')
  const consortium = await openConsortium(join(root, 'c'))
  const home = join(root, 'site')
  const siteRequest = await initHome(home, { name: 'Site', role: 'site', subspecialties: [] })
  await joinHome(home, await admit(consortium, siteRequest), consortium.info)
  const readerRequest = await initHome(join(root, 'reader'), {
    name: 'Reader',
    role: 'radiologist',
    subspecialties: []
  })
  const readerCertificate = await admit(consortium, readerRequest)
  const member = await loadMember(home)

  let db = await openDatabase(member.paths.database)
  let registry = new MembershipRegistry(member.trust, member.certificate, db)
  await registry.load()
  await registry.recordVerified(readerCertificate)
  assert.ok(registry.isMember(readerRequest.peerId))
  const seen: string[] = []
  registry.onRevoked(r => seen.push(r.peerId))
  const revocation = await revoke(consortium, readerRequest.peerId)
  assert.is((await registry.addRevocations([revocation, revocation])).added.length, 1)
  assert.equal(seen, [readerRequest.peerId])
  assert.not.ok(registry.isMember(readerRequest.peerId))
  await db.close()

  db = await openDatabase(member.paths.database)
  registry = new MembershipRegistry(member.trust, member.certificate, db)
  await registry.load()
  assert.ok(registry.isRevoked(readerRequest.peerId))
  assert.not.ok(registry.isMember(readerRequest.peerId))
  assert.is(registry.certificateOf(readerRequest.peerId)?.name, 'Reader')
  const check = registry.check(readerCertificate, readerRequest.peerId)
  assert.is(check.ok ? 'ok' : check.code, 'revoked')
  await db.close()
})

test.run()
