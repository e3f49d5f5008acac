/**
 * The checks of what peers send (VersionCheck, chunkMatches), with real keys and signatures:
 * a version is taken only when signed by a member of this consortium, not dated ahead of the clocks, and from
 * the study's origin; a version is opened only with a wrap for this node that verifies, opens and opens the
 * version's index. What cannot be honest is counted against its sender; what is merely not for us is not.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encryptChunk, signKeyWrap, signManifest, wrapContentKey } from '../../node/exchange/crypto.ts'
import { packChunk } from '../../node/exchange/packing.ts'
import { checkChunk, chunkMatches, VersionCheck } from '../../node/exchange/verify.ts'
import { CHUNK_FORM } from '../../protocol/exchange/chunks.ts'
import type { OpenVersion } from '../../node/exchange/versions.ts'
import type { Identity } from '../../node/identity/keys.ts'
import { CLOCK_SKEW_MS } from '../../node/membership/trust.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { type KeyWrap, type StudyManifest, TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import { MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { CONSORTIUM, MemoryVersions, member, readableLog, version, wrapFor } from './helpers.ts'

const me = await member()
const site = await member()
const stranger = await member()
const files = [randomBytes(3000), randomBytes(70_000)]
const from = { peer: site.peerId, protocol: MANIFEST_PROTOCOL }

function checking(options: { members?: string[]; versions?: MemoryVersions } = {}) {
  const { log, lines } = readableLog()
  const penalties = new PeerPenalties()
  const versions = options.versions ?? new MemoryVersions()
  const members = new Set(options.members ?? [me.peerId, site.peerId])
  const registry = { isMember: (peer: string) => members.has(peer) }
  const check = new VersionCheck({ identity: me, consortiumId: CONSORTIUM, registry, penalties, versions, log })
  return { check, penalties, versions, lines }
}

/** `manifest` with `changes`, signed again by `by`. */
async function resigned(
  manifest: StudyManifest,
  by: Identity,
  changes: Partial<StudyManifest>
): Promise<StudyManifest> {
  const { signature: _signature, ...unsigned } = manifest
  return await signManifest(by.privateKey, { ...unsigned, ...changes })
}

/** A signed wrap for `recipient` of `key` (the version's own unless given), as `by` would make it. */
async function wrapOf(study: OpenVersion, options: { key?: Buffer; sealedFor?: Identity; by?: Identity } = {}) {
  const { studyUid, versionId } = study.manifest
  const sealedFor = options.sealedFor ?? me
  const key = options.key ?? study.key
  const { ephemeralKey, wrappedKey } = wrapContentKey(key, sealedFor.wrapPublicKey, studyUid, versionId)
  const by = options.by ?? site
  const createdAt = new Date().toISOString()
  return await signKeyWrap(by.privateKey, {
    v: 1,
    studyUid,
    versionId,
    recipient: me.peerId,
    ephemeralKey,
    wrappedKey,
    wrappedBy: by.peerId,
    createdAt
  })
}

test("a version signed by a member of this consortium, dated now, from a study's first origin is taken", async () => {
  const study = await version(site, files)
  assert.is(await checking().check.versionRefusal(study.manifest), undefined)
})

test('a manifest changed after signing, of another consortium, or from a non-member is a bad-manifest', async () => {
  const { manifest } = await version(site, files)
  const { check } = checking()
  const changed = { ...manifest, instanceCount: manifest.instanceCount + 1 }
  const otherConsortium = await resigned(manifest, site, { consortiumId: Buffer.alloc(32, 9).toString('base64url') })
  const byStranger = await resigned(manifest, stranger, { origin: stranger.peerId })
  for (const offered of [changed, otherConsortium, byStranger]) {
    assert.is((await check.versionRefusal(offered))?.code, 'bad-manifest')
  }
})

test('a manifest dated further ahead than clocks drift is refused: it would outrank every honest version', async () => {
  const { check } = checking()
  const ahead = new Date(Date.now() + CLOCK_SKEW_MS + 60_000).toISOString()
  const future = await version(site, files, { createdAt: ahead })
  assert.is((await check.versionRefusal(future.manifest))?.code, 'manifest-from-the-future')
  const withinSkew = await version(site, files, { createdAt: new Date(Date.now() + CLOCK_SKEW_MS / 2).toISOString() })
  assert.is(await check.versionRefusal(withinSkew.manifest), undefined)
})

test('a version of a study whose versions come from another origin is foreign, however well signed', async () => {
  const versions = new MemoryVersions(await version(site, files))
  const { check } = checking({ members: [me.peerId, site.peerId, stranger.peerId], versions })
  const replacement = await version(stranger, files)
  assert.is((await check.versionRefusal(replacement.manifest))?.code, 'foreign-version')
  const again = await version(site, files)
  assert.is(await check.versionRefusal(again.manifest), undefined, 'the origin may publish again')
})

test('a wrap for this node that verifies opens the version and is kept with it; nothing is counted', async () => {
  const study = await version(site, files)
  const { check, penalties, versions } = checking()
  const wrap = await wrapFor(study, me, site)
  const opened = await check.openWithWrap(study.manifest, wrap, from)
  assert.equal(opened?.index, study.index)
  assert.ok(opened?.key.equals(study.key))
  assert.is(versions.latest?.manifest.versionId, study.manifest.versionId)
  assert.is(versions.wraps.get(me.peerId), wrap)
  assert.is(penalties.scoreOf(site.peerId), 0)
})

test('a wrap for another node, study or version is passed over, not counted: it is not a lie', async () => {
  const study = await version(site, files)
  const other = await version(site, files)
  const { check, penalties, versions } = checking()
  const forOther: KeyWrap = await wrapFor(study, stranger, site)
  const ofOtherVersion = await wrapFor(other, me, site)
  assert.is(await check.openWithWrap(study.manifest, forOther, from), undefined)
  assert.is(await check.openWithWrap(study.manifest, ofOtherVersion, from), undefined)
  assert.is(versions.latest, undefined)
  assert.is(penalties.scoreOf(site.peerId), 0)
})

test('a wrap that does not verify, by a non-member, or that does not open is a bad-key-wrap, counted', async () => {
  const study = await version(site, files)
  // The wrapped key of another wrap put in after signing: it would open, but the signature says otherwise.
  const tampered = { ...(await wrapOf(study)), wrappedKey: (await wrapOf(study)).wrappedKey }
  const byStranger = await wrapOf(study, { by: stranger })
  const sealedForAnother = await wrapOf(study, { sealedFor: stranger })
  for (const wrap of [tampered, byStranger, sealedForAnother]) {
    const { check, penalties, versions, lines } = checking()
    assert.is(await check.openWithWrap(study.manifest, wrap, from), undefined)
    assert.is(versions.latest, undefined, 'nothing of the version is kept')
    assert.ok(penalties.scoreOf(site.peerId) > 0, 'counted against the sender')
    assert.is(lines.at(-1)?.['code'], 'bad-key-wrap')
  }
})

test("a wrap of a key that does not open the version's sealed index is a bad-manifest-index, counted", async () => {
  const study = await version(site, files)
  const { check, penalties, versions, lines } = checking()
  const wrap = await wrapOf(study, { key: randomBytes(32) })
  assert.is(await check.openWithWrap(study.manifest, wrap, from), undefined)
  assert.is(versions.latest, undefined)
  assert.ok(penalties.scoreOf(site.peerId) > 0)
  assert.is(lines.at(-1)?.['code'], 'bad-manifest-index')
})

test("a chunk matches only the manifest's hash at its index", async () => {
  const study = await version(site, files)
  const { studyUid, versionId } = study.manifest
  const sealed = encryptChunk(study.key, studyUid, versionId, 0, false, files[0] as Buffer)
  assert.ok(chunkMatches(study.manifest, 0, sealed))
  assert.not.ok(chunkMatches(study.manifest, 1, sealed), 'the right bytes at another index')
  assert.not.ok(chunkMatches(study.manifest, 0, randomBytes(sealed.byteLength)))
})

test('a chunk that is a whole instance is checked opened: the instance and its hash, or nothing when altered', async () => {
  const study = await version(site, files)
  const { studyUid, versionId } = study.manifest
  const sealed = encryptChunk(study.key, studyUid, versionId, 1, true, files[1] as Buffer)
  const checked = await checkChunk(study, 1, CHUNK_FORM.sealed, sealed)
  assert.ok(checked !== undefined && 'instance' in checked, 'taken as the instance')
  assert.ok(checked.instance.equals(files[1] as Buffer))
  assert.is(checked.sha256, study.index.instances[1]?.sha256)
  const altered = Buffer.from(sealed)
  altered[100] = (altered[100] as number) ^ 1
  assert.is(await checkChunk(study, 1, CHUNK_FORM.sealed, altered), undefined, 'one bit flipped')
  assert.is(await checkChunk(study, 0, CHUNK_FORM.sealed, sealed), undefined, 'the right bytes at another index')
  const otherKey = encryptChunk(randomBytes(32), studyUid, versionId, 1, true, files[1] as Buffer)
  assert.is(await checkChunk(study, 1, CHUNK_FORM.sealed, otherKey), undefined, 'sealed under another key')
  const packed = await packChunk(study.key, { studyUid, versionId, index: 1, last: true }, Buffer.alloc(70_000, 7))
  assert.ok(packed !== undefined)
  assert.is(await checkChunk(study, 1, CHUNK_FORM.packed, packed), undefined, 'packed from other bytes: wrong hash')
})

test("a chunk of an instance that spans several is checked sealed, against the manifest's hash", async () => {
  const large = randomBytes(1_500_000)
  const study = await version(site, [large])
  const { studyUid, versionId } = study.manifest
  const first = large.subarray(0, TRANSFER_CHUNK_PLAINTEXT)
  const sealed = encryptChunk(study.key, studyUid, versionId, 0, false, first)
  const checked = await checkChunk(study, 0, CHUNK_FORM.sealed, sealed)
  assert.ok(checked !== undefined && 'sealed' in checked && checked.sealed.equals(sealed))
  const packed = await packChunk(
    study.key,
    { studyUid, versionId, index: 0, last: false },
    Buffer.alloc(first.byteLength)
  )
  assert.ok(packed !== undefined)
  assert.is(await checkChunk(study, 0, CHUNK_FORM.packed, packed), undefined, 'packed from other bytes')
  const altered = Buffer.from(sealed)
  altered[7] = (altered[7] as number) ^ 1
  assert.is(await checkChunk(study, 0, CHUNK_FORM.sealed, altered), undefined)
})

test.run()
