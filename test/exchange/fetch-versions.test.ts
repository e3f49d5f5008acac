/**
 * A study that grows while a reader fetches it (a STAT study streamed during its acquisition): the holder keeps
 * serving the version the reader began; one that no longer can offers the newer, which supersedes the fetch.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { type Handler, holder, member, reader, version, within, wrapFor } from './helpers.ts'

const me = await member()
const site = await member()

const later = (ms: number): string => new Date(Date.now() + ms).toISOString()

/**
 * A holder whose first manifest answer is `before`'s and every later one `after`'s, serving `after`'s chunks:
 * a holder that moved on to a newer version after the fetch found the older (a restart of the site, say).
 */
function switchingAfterFirst(before: Record<string, Handler>, after: Record<string, Handler>): Record<string, Handler> {
  let asked = 0
  return {
    ...after,
    [MANIFEST_PROTOCOL]: async (stream, connection) => {
      asked++
      await ((asked === 1 ? before : after)[MANIFEST_PROTOCOL] as Handler)(stream, connection)
    }
  }
}

test('a holder that serves only a newer version of the study ends the fetch of the older: superseded, kept', async () => {
  const files = [randomBytes(40_000), randomBytes(40_000), randomBytes(40_000)]
  const older = await version(site, files.slice(0, 2), { createdAt: later(-2000) })
  const newer = await version(site, files, { createdAt: later(-1000) })
  const before = holder(older, files.slice(0, 2), { wraps: [await wrapFor(older, me, site)] })
  const after = holder(newer, files, { wraps: [await wrapFor(newer, me, site)] })
  // The first manifest answer (the fetch finding its version) is the older; from then on the holder has moved on
  // and no longer holds the older open.
  const switching = switchingAfterFirst(before, after)
  const fetching = reader(me, { [site.peerId]: switching }, [older], { origin: site.peerId })
  fetching.fetch.start()
  await within(15_000, 'the fetch', fetching.fetch.settled())
  assert.is(fetching.fetch.superseded, true)
  assert.is((await fetching.fetch.availability()).state, 'stopped')
  assert.is(fetching.fetch.manifest?.versionId, older.manifest.versionId)
  assert.is(fetching.versions.latest?.manifest.versionId, newer.manifest.versionId, 'the newer version is kept')
  assert.ok(fetching.lines.some(line => line['event'] === 'fetch-superseded'))
})

test('a newer version of another origin, or without a wrap for this node, supersedes nothing', async () => {
  const other = await member()
  const files = [randomBytes(30_000)]
  const older = await version(site, files, { createdAt: later(-2000) })
  const foreign = await version(other, files, { createdAt: later(-1000) })
  const before = holder(older, files, { wraps: [await wrapFor(older, me, site)] })
  const after = holder(foreign, files, { wraps: [await wrapFor(foreign, me, other)] })
  const switching = switchingAfterFirst(before, after)
  const fetching = reader(me, { [site.peerId]: switching }, [older], { origin: site.peerId })
  fetching.fetch.start()
  await new Promise(resolve => setTimeout(resolve, 1500))
  assert.is(fetching.fetch.superseded, false)
  assert.is(fetching.versions.latest?.manifest.versionId, older.manifest.versionId, 'the foreign one is not kept')
  fetching.fetch.stop()
  await within(15_000, 'the fetch to stop', fetching.fetch.settled())
})

test.run()
