/**
 * Which version a fetch takes when this node has none yet, fetched in-process from two members over
 * in-memory streams: the newest a member offers, unless the fetch names the study's origin (a case's site),
 * when another member's version of the same study UID, however new, is refused as foreign.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { holder, member, reader, version, within, wrapFor } from './helpers.ts'

const me = await member()
const site = await member()
const forger = await member()
// Each member offers a version of its own making, with a wrap for this node; the forger's is an hour newer.
const siteFiles = [randomBytes(5000)]
const forgedFiles = [randomBytes(6000)]
const siteVersion = await version(site, siteFiles, { createdAt: new Date(Date.now() - 7_200_000).toISOString() })
const forgedVersion = await version(forger, forgedFiles, { createdAt: new Date(Date.now() - 3_600_000).toISOString() })
const holders = {
  [site.peerId]: holder(siteVersion, siteFiles, { wraps: [await wrapFor(siteVersion, me, site)] }),
  [forger.peerId]: holder(forgedVersion, forgedFiles, { wraps: [await wrapFor(forgedVersion, me, forger)] })
}

async function fetched(origin?: string): Promise<ReturnType<typeof reader>> {
  const fetching = reader(me, holders, [siteVersion, forgedVersion], origin === undefined ? {} : { origin })
  fetching.fetch.start()
  await within(10_000, 'the fetch', fetching.fetch.settled())
  return fetching
}

test('without an origin, the newest version offered is taken', async () => {
  const { fetch, archive } = await fetched()
  assert.is((await fetch.availability()).state, 'complete')
  assert.ok(archive.files.get(forgedVersion.index.instances[0]?.sopUid ?? '')?.equals(forgedFiles[0] as Buffer))
})

test(
  "with the case's site as origin, only the site's " + 'version is taken; the other is refused, not counted',
  async () => {
    const { fetch, archive, penalties, lines } = await fetched(site.peerId)
    assert.is((await fetch.availability()).state, 'complete')
    assert.ok(archive.files.get(siteVersion.index.instances[0]?.sopUid ?? '')?.equals(siteFiles[0] as Buffer))
    assert.ok(lines.some(line => line['code'] === 'foreign-version' && line['peer'] === forger.peerId))
    assert.is(penalties.scoreOf(forger.peerId), 0, "a holder passing on another origin's version may be honest")
  }
)

test.run()
