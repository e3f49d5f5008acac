/**
 * Which version a fetch takes when this node has none yet, driven in-process with the exchange stubbed: the
 * newest a member offers, unless the fetch names the study's origin (a case's site), when another member's
 * version of the same study UID, however new, is refused as foreign.
 */
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { StudyFetch, type StudyFetchOptions } from '../../node/exchange/fetch.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'

const SITE = '12D3KooWSiteSiteSiteSiteSiteSiteSiteSiteSiteSite1'
const FORGER = '12D3KooWForgerForgerForgerForgerForgerForgerFo1'
const STUDY = '1.2.826.0.1.3680043.8.498.9'

/** Each member offers a version of its own making; the forger's is an hour newer. */
const offers: Record<string, { origin: string, createdAt: string }> = {
  [SITE]: { origin: SITE, createdAt: '2026-12-07T01:00:00.000Z' },
  [FORGER]: { origin: FORGER, createdAt: '2026-12-07T02:00:00.000Z' }
}

async function chosen (origin?: string): Promise<{ origin: string, penalties: PeerPenalties }> {
  const penalties = new PeerPenalties()
  const fetch = new StudyFetch({
    studyUid: STUDY,
    actor: { type: 'peer', id: 'me' },
    ...(origin === undefined ? {} : { origin }),
    log: pino({ level: 'silent' }),
    penalties,
    versions: { openLatest: async () => undefined },
    exchange: {
      versionRefusal: async () => undefined,
      openWithWrap: async (manifest: unknown) => ({ manifest })
    }
  } as unknown as StudyFetchOptions)
  Object.assign(fetch, {
    members: () => [FORGER, SITE],
    askManifest: async (peer: string) => ({ status: 'ok', manifest: { studyUid: STUDY, ...offers[peer] }, wraps: [{}] })
  })
  const found = await (fetch as unknown as { findVersion: () => Promise<{ manifest: { origin: string } }> }).findVersion()
  return { origin: found.manifest.origin, penalties }
}

test('without an origin, the newest version offered is taken', async () => {
  assert.is((await chosen()).origin, FORGER)
})

test('with the case\'s site as origin, only the site\'s version is taken; the other is refused, not counted', async () => {
  const { origin, penalties } = await chosen(SITE)
  assert.is(origin, SITE)
  assert.is(penalties.scoreOf(FORGER), 0, 'a holder passing on another origin\'s version may be honest')
})

test.run()
