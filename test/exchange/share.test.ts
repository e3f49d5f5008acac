/**
 * Sharing a study (StudySharing) in-process: a site shares with a reader whose own StudySharing takes the
 * announcement over an in-memory stream; archives and version stores are in memory; what the reader checks
 * of the announcement (signature, origin, key wrap, sealed index) is checked for real.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { OpenVersion } from '../../node/exchange/index.ts'
import { StudySharing } from '../../node/exchange/share.ts'
import { VersionCheck } from '../../node/exchange/verify.ts'
import type { Identity } from '../../node/identity/keys.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { ANNOUNCE_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { CONSORTIUM, type Handler, MemoryVersions, member, network, readableLog, STUDY, version } from './helpers.ts'

const site = await member()
const readerIdentity = await member()
const files = [randomBytes(2000), randomBytes(3000)]

/** A member that takes announcements: its StudySharing's handler, with real checks. */
function recipient(self: Identity, versions = new MemoryVersions()) {
  const { log, lines } = readableLog()
  const penalties = new PeerPenalties()
  const registry = { isRevoked: () => false, isMember: () => true, certificateOf: () => undefined }
  const check = new VersionCheck({ identity: self, consortiumId: CONSORTIUM, registry, penalties, versions, log })
  const sharing = new StudySharing(
    {
      libp2p: network(self.peerId, {}) as never,
      identity: self,
      consortiumId: CONSORTIUM,
      registry,
      archive: {} as never,
      versions: versions as never,
      check,
      penalties,
      audit: { append: async () => undefined as never },
      log
    },
    { timeoutMs: 2000 }
  )
  return { versions, penalties, lines, handlers: { [ANNOUNCE_PROTOCOL]: sharing.handleAnnounce } }
}

interface Site {
  sharing: StudySharing
  versions: MemoryVersions
  published: OpenVersion[]
  audits: Array<{ detail?: string }>
  /** the study as the site's archive holds it */
  study: { instanceCount: number } | undefined
}

/** The site, sharing with `members` (peer id -> announce handlers); `revoked` and `unknown` members as named. */
function siteSharing(
  members: Record<string, Record<string, Handler>>,
  options: {
    revoked?: string[]
    unknown?: string[]
    /** the version the site publishes (a fresh one of `files` unless given) */
    publish?: () => Promise<OpenVersion>
  } = {}
): Site {
  const versions = new MemoryVersions()
  const published: OpenVersion[] = []
  const audits: Array<{ detail?: string }> = []
  const state: Site = {
    sharing: undefined as never,
    versions,
    published,
    audits,
    study: { instanceCount: files.length }
  }
  const wrapKeys = new Map([[readerIdentity.peerId as string, readerIdentity.wrapPublicKey]])
  const { log } = readableLog()
  state.sharing = new StudySharing(
    {
      libp2p: network(site.peerId, members) as never,
      identity: site,
      consortiumId: CONSORTIUM,
      registry: {
        isRevoked: peer => options.revoked?.includes(peer) ?? false,
        isMember: () => true,
        certificateOf: peer => {
          const wrapKey = wrapKeys.get(peer)
          return options.unknown?.includes(peer) === true || wrapKey === undefined ? undefined : ({ wrapKey } as never)
        }
      },
      archive: {
        study: async () => state.study as never,
        instancesOf: async function* () {},
        seriesOf: async function* () {},
        read: async () => Buffer.alloc(0)
      },
      versions: Object.assign(versions, {
        publish: async () => {
          const made = await (options.publish?.() ?? version(site, files))
          versions.latest = made
          published.push(made)
          return made
        }
      }) as never,
      check: { versionRefusal: async () => undefined, openWithWrap: async () => undefined },
      penalties: new PeerPenalties(),
      audit: {
        append: async (entry: { detail?: string }) => {
          audits.push(entry)
          return undefined as never
        }
      },
      log
    },
    { timeoutMs: 2000 }
  )
  return state
}

const actor = { type: 'api', id: 'dr-site' } as const

test(
  'a study is shared by publishing a version, wrapping its ' +
    'key for the reader and announcing it; the reader takes it',
  async () => {
    const taker = recipient(readerIdentity)
    const { sharing, published, audits } = siteSharing({ [readerIdentity.peerId]: taker.handlers })
    const result = await sharing.share(STUDY, [readerIdentity.peerId], actor)
    assert.is(published.length, 1)
    assert.equal(result, {
      studyUid: STUDY,
      versionId: published[0]?.manifest.versionId,
      recipients: [{ peerId: readerIdentity.peerId, announced: true }]
    })
    assert.is(
      taker.versions.latest?.manifest.versionId,
      published[0]?.manifest.versionId,
      'the reader opened the version with its wrap'
    )
    assert.ok(taker.versions.latest?.key.equals(published[0]?.key as Buffer))
    assert.match(audits.map(entry => entry.detail).join('\n'), `shared with ${readerIdentity.peerId}`)
  }
)

test('sharing again takes the version and the wrap made before; a study that grew is published again', async () => {
  const taker = recipient(readerIdentity)
  const state = siteSharing({ [readerIdentity.peerId]: taker.handlers })
  await state.sharing.share(STUDY, [readerIdentity.peerId], actor)
  const wrap = state.versions.wraps.get(readerIdentity.peerId)
  await state.sharing.share(STUDY, [readerIdentity.peerId], actor)
  assert.is(state.published.length, 1)
  assert.is(state.versions.wraps.get(readerIdentity.peerId), wrap)
  state.study = { instanceCount: files.length + 1 }
  state.versions.latest = state.published[0]
  await state.sharing.share(STUDY, [readerIdentity.peerId], actor)
  assert.is(state.published.length, 2, 'the archive holds more than the version: a new one')
})

test(
  'a study is never shared with a revoked member, nor ' + 'with one whose certificate this node does not know',
  async () => {
    const cases: Array<[{ revoked?: string[]; unknown?: string[] }, string]> = [
      [{ revoked: [readerIdentity.peerId] }, 'RADMESH_REVOKED'],
      [{ unknown: [readerIdentity.peerId] }, 'RADMESH_NOT_A_MEMBER']
    ]
    for (const [options, code] of cases) {
      const state = siteSharing({}, options)
      const error = await state.sharing.share(STUDY, [readerIdentity.peerId], actor).then(
        () => undefined,
        (e: unknown) => e
      )
      assert.is((error as { code?: string } | undefined)?.code, code)
      assert.is(state.published.length, 0, 'no version is made for it')
    }
  }
)

test('a study neither in the archive nor shared with this node is not found', async () => {
  const state = siteSharing({})
  state.study = undefined
  const error = await state.sharing.share(STUDY, [readerIdentity.peerId], actor).then(
    () => undefined,
    (e: unknown) => e
  )
  assert.is((error as { code?: string } | undefined)?.code, 'RADMESH_NOT_FOUND')
})

test('an announcement whose manifest was changed after signing is refused and counted against the sharer', async () => {
  const taker = recipient(readerIdentity)
  const tampered = async (): Promise<OpenVersion> => {
    const made = await version(site, files)
    return { ...made, manifest: { ...made.manifest, createdAt: new Date(Date.now() - 1000).toISOString() } }
  }
  const state = siteSharing({ [readerIdentity.peerId]: taker.handlers }, { publish: tampered })
  const result = await state.sharing.share(STUDY, [readerIdentity.peerId], actor)
  assert.equal(result.recipients, [{ peerId: readerIdentity.peerId, announced: false }])
  assert.is(taker.versions.latest, undefined, 'nothing of the version is kept')
  assert.ok(taker.lines.some(line => line['code'] === 'bad-manifest' && line['peer'] === site.peerId))
  assert.ok(taker.penalties.scoreOf(site.peerId) > 0)
})

test('an announcement of a study this node follows from another origin is refused as foreign', async () => {
  const elsewhere = await member()
  const followed = new MemoryVersions(await version(elsewhere, [randomBytes(100)]))
  const taker = recipient(readerIdentity, followed)
  const state = siteSharing({ [readerIdentity.peerId]: taker.handlers })
  const result = await state.sharing.share(STUDY, [readerIdentity.peerId], actor)
  assert.equal(result.recipients, [{ peerId: readerIdentity.peerId, announced: false }])
  assert.is(followed.latest?.manifest.origin, elsewhere.peerId, 'the version followed stays')
  assert.ok(taker.lines.some(line => line['code'] === 'foreign-version'))
})

test('a reader that cannot be reached is not announced to; the share still holds its wrap', async () => {
  const state = siteSharing({})
  const result = await state.sharing.share(STUDY, [readerIdentity.peerId], actor)
  assert.equal(result.recipients, [{ peerId: readerIdentity.peerId, announced: false }])
  assert.ok(state.versions.wraps.has(readerIdentity.peerId), 'the reader finds its wrap when it fetches')
})

test.run()
