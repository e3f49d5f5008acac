/**
 * A member that misbehaves on the exchange protocols, against a real site process: it holds a real
 * certificate (so it passes the handshake) and announces versions that lie, or cuts its requests short.
 * Each is refused with a logged code and counted against it; the site's study, its version and what it
 * serves are unchanged.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { ManifestIndex } from '../../protocol/exchange/manifest.ts'
import {
  ANNOUNCE_PROTOCOL,
  type Announcement,
  type AnnouncementAnswer,
  decodeAnnouncementAnswer,
  decodeManifestResponse,
  encodeAnnouncement,
  encodeManifestRequest,
  MANIFEST_PROTOCOL,
  type ManifestResponse
} from '../../protocol/exchange/messages.ts'
import type { MemberCertificate } from '../../protocol/membership/certificate.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { BadMember, framed, makeVersion } from '../../scripts/lib/bad-member.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { logOf, p2pAddr, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

let consortium: ScratchConsortium
let site: StartedNode
let siteCertificate: MemberCertificate
let member: BadMember
let studyUid: string
let siteVersion: string
type Instance = ManifestIndex['instances'][number]

/** The body of the one length-prefixed message in `bytes`. */
function body(bytes: Uint8Array): Uint8Array {
  let at = 0
  while (((bytes[at] ?? 0) & 0x80) !== 0) at++
  return bytes.subarray(at + 1)
}

async function announce(message: Announcement): Promise<AnnouncementAnswer> {
  const sent = await member.send(ANNOUNCE_PROTOCOL, [framed(encodeAnnouncement(message))], { waitMs: 10_000 })
  assert.ok(sent.reply.byteLength > 0, `the site answered the announcement (${sent.ended})`)
  return decodeAnnouncementAnswer(body(sent.reply))
}

async function askManifest(uid: string): Promise<{ ended: string; answer?: ManifestResponse }> {
  const request = framed(encodeManifestRequest({ studyUid: uid }))
  const sent = await member.send(MANIFEST_PROTOCOL, [request], { waitMs: 10_000, maxReply: 16 * 1024 * 1024 })
  if (sent.reply.byteLength === 0) return { ended: sent.ended }
  return { ended: sent.ended, answer: decodeManifestResponse(body(sent.reply)) }
}

/** The site's refusal of this member with `code`, waited for. */
async function refusal(code: string): Promise<Record<string, unknown>> {
  return await waitFor(
    `a refusal with code ${code}`,
    async () => (await logOf(site.home)).find(line => line['code'] === code && line['peer'] === member.peerId),
    5_000
  )
}

const version = async (options: Partial<Parameters<typeof makeVersion>[1]> = {}): ReturnType<typeof makeVersion> =>
  await makeVersion(member.identity, {
    consortiumId: siteCertificate.consortiumId,
    studyUid,
    recipient: site.peerId,
    recipientWrapKey: siteCertificate.wrapKey,
    ...options
  })

test.before(async () => {
  consortium = await createScratchConsortium('Lying Versions')
  const home = await consortium.member('Plain Site', 'site')
  siteCertificate = JSON.parse(await fs.readFile(join(home, 'certificate.json'), 'utf8')) as MemberCertificate
  site = await startNode(home, { dicom: true })
  member = await BadMember.admit(consortium.dir, await tempDir(), { name: 'Dr Forger', role: 'radiologist' })
  await member.connect(p2pAddr(site))
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 3, rows: 64, columns: 64, seed: 31 })
  studyUid = study.studyInstanceUid
  const peerIds = [member.peerId]
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  const shared = await site.api<{ versionId: string }>('POST', `/api/studies/${studyUid}/share`, { peerIds })
  assert.is(shared.status, 200, JSON.stringify(shared.body))
  siteVersion = shared.body.versionId
})

test.after(async () => {
  await member?.stop()
  await site?.kill()
})

test("its own version of the site's study, dated later: refused (foreign-version); the site keeps its", async () => {
  const forged = await version({ createdAt: new Date(Date.now() + 60_000).toISOString() })
  const answer = await announce({ manifest: forged.manifest, wraps: [forged.wrap] })
  assert.is(answer.status, 'refused')
  const line = await refusal('foreign-version')
  assert.ok((line['penalty'] as number) > 0)
  const { answer: manifest } = await askManifest(studyUid)
  const served = manifest?.status === 'ok' ? manifest.manifest.versionId : undefined
  assert.is(served, siteVersion, 'the site still serves its own version')
  type Availability = { complete: boolean; instancesLocal: number }
  const availability = await site.api<Availability>('GET', `/api/studies/${studyUid}/availability`)
  assert.equal([availability.body.complete, availability.body.instancesLocal], [true, 3])
})

test('a version whose sealed index lies about its instances: bad-manifest-index, none of it kept', async () => {
  const other = `${studyUid}.9`
  // One instance fewer than the manifest says: the index does not account for the manifest.
  const missing = await version({ studyUid: other, index: index => ({ instances: index.instances.slice(1) }) })
  assert.is((await announce({ manifest: missing.manifest, wraps: [missing.wrap] })).status, 'refused')
  assert.ok(((await refusal('bad-manifest-index'))['penalty'] as number) > 0)
  const after = await askManifest(other)
  assert.is(after.answer?.status, 'unknown-study', `a version that does not hold is not kept (stream ${after.ended})`)
  // Sizes swapped between the two instances: every total agrees, only the chunk sizes tell.
  const swapped = await version({
    studyUid: `${studyUid}.10`,
    index: index => ({
      instances: index.instances.map((instance, i, all) => ({ ...instance, size: (all[1 - i] as Instance).size }))
    })
  })
  assert.is((await announce({ manifest: swapped.manifest, wraps: [swapped.wrap] })).status, 'refused')
})

test('a version dated an hour ahead: manifest-from-the-future; a wrap that does not open: bad-key-wrap', async () => {
  const ahead = await version({ studyUid: `${studyUid}.11`, createdAt: new Date(Date.now() + 3600_000).toISOString() })
  assert.is((await announce({ manifest: ahead.manifest, wraps: [ahead.wrap] })).status, 'refused')
  await refusal('manifest-from-the-future')
  // A wrap addressed to the site but made for the member's own key: it cannot open.
  const wrong = await version({ studyUid: `${studyUid}.12`, recipientWrapKey: member.identity.wrapPublicKey })
  assert.is((await announce({ manifest: wrong.manifest, wraps: [wrong.wrap] })).status, 'refused')
  assert.ok(((await refusal('bad-key-wrap'))['penalty'] as number) > 0)
  // An honest version of a study the site does not have is taken.
  const honest = await version({ studyUid: `${studyUid}.13` })
  assert.is((await announce({ manifest: honest.manifest, wraps: [honest.wrap] })).status, 'ok')
})

test('a request cut short is refused as truncated-message and counted', async () => {
  const request = framed(encodeManifestRequest({ studyUid }))
  const sent = await member.send(MANIFEST_PROTOCOL, [request.subarray(0, 12)], { waitMs: 5_000 })
  assert.is(sent.reply.byteLength, 0, 'no answer')
  const line = await refusal('truncated-message')
  assert.is(line['protocol'], MANIFEST_PROTOCOL)
  assert.is(line['event'], 'bad-message')
  assert.is((await site.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
})

test.run()
