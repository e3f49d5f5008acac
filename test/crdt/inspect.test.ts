/**
 * Untrusted Yjs updates are opened in a worker: garbage and truncated updates are refused with a reason, an
 * update that takes too long is refused and the worker replaced, and the inspector keeps working after.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerIdString } from '../../protocol/ids.ts'
import { UpdateInspector, UpdateRefusedError } from '../../node/crdt/inspect.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'

function sampleUpdate(): Uint8Array {
  const doc = new Y.Doc()
  doc.getMap('records').set('claim:x', { kind: 'claim' })
  const text = doc.getText('findings')
  text.insert(0, 'No haemorrhage.')
  text.insert(3, 'acute ')
  text.delete(0, 1)
  return Y.encodeStateAsUpdate(doc)
}

async function refused(promise: Promise<unknown>): Promise<UpdateRefusedError> {
  try {
    await promise
  } catch (error) {
    assert.instance(error, UpdateRefusedError)
    return error as UpdateRefusedError
  }
  throw new assert.Assertion({
    message: 'the update was accepted',
    generated: true,
    operator: 'throws',
    expects: 'refusal',
    actual: 'accepted'
  })
}

test('describes map entries, text insertions (with origins) and deletions', async () => {
  const inspector = new UpdateInspector()
  try {
    const { items, deletes } = await inspector.inspect(sampleUpdate())
    const entry = items.find(item => item.root === 'records')
    assert.equal(
      { parentSub: entry?.parentSub, kind: entry?.kind, values: entry?.values, hasOrigin: entry?.hasOrigin },
      { parentSub: 'claim:x', kind: 'any', values: [{ kind: 'claim' }], hasOrigin: false }
    )
    assert.ok(
      items.some(item => item.kind === 'string' && item.hasOrigin && item.root === null),
      'an insertion inside text names its origin, not its root'
    )
    assert.is(
      deletes.reduce((sum, d) => sum + d.length, 0),
      1
    )
  } finally {
    await inspector.close()
  }
})

test('a worklist record signed by its author is marked signed; changed, forged or unsigned values are not', async () => {
  const key = await generateKeyPair('Ed25519')
  const by = peerIdFromPrivateKey(key).toString() as PeerIdString
  const caseId = '0123456789abcdef01234567'
  const claim = await signWorklistRecord(key, {
    v: 1,
    kind: 'claim',
    caseId,
    seq: 1,
    by,
    at: '2026-12-07T03:00:00.000Z'
  })
  const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const values: Record<string, unknown> = {
    good: claim,
    changed: { ...claim, seq: 2 },
    forged: { ...claim, by: stranger },
    unsigned: Object.fromEntries(Object.entries(claim).filter(([field]) => field !== 'signature')),
    other: { kind: 'claim' }
  }
  const doc = new Y.Doc()
  for (const [name, value] of Object.entries(values)) doc.getMap('records').set(name, value)
  const inspector = new UpdateInspector()
  try {
    const { items } = await inspector.inspect(Y.encodeStateAsUpdate(doc))
    const signed = Object.fromEntries(items.map(item => [item.parentSub, item.signed === true]))
    assert.equal(signed, { good: true, changed: false, forged: false, unsigned: false, other: false })
  } finally {
    await inspector.close()
  }
})

test('garbage, truncated and empty updates are refused with a reason', async () => {
  const inspector = new UpdateInspector()
  try {
    const good = sampleUpdate()
    for (const bad of [
      randomBytes(2048),
      good.subarray(0, good.byteLength - 5),
      new Uint8Array(0),
      Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
    ]) {
      const error = await refused(inspector.inspect(bad))
      assert.match(error.message, /does not decode|stopped|took more than/)
    }
    assert.ok((await inspector.inspect(good)).items.length > 0, 'still works after refusals')
  } finally {
    await inspector.close()
  }
})

test(
  'an update that takes longer than the deadline is refused and its worker stopped; a new inspector serves ' +
    'the next one',
  async () => {
    const doc = new Y.Doc()
    const text = doc.getText('findings')
    for (let i = 0; i < 20_000; i++) text.insert(Math.floor(i / 2), 'x')
    const slow = new UpdateInspector({ timeoutMs: 1 })
    try {
      const error = await refused(slow.inspect(Y.encodeStateAsUpdate(doc)))
      assert.match(error.message, /took more than 1 ms/)
    } finally {
      await slow.close()
    }
    const inspector = new UpdateInspector({ timeoutMs: 20 })
    try {
      await refused(inspector.inspect(Y.encodeStateAsUpdate(doc)))
    } finally {
      await inspector.close()
    }
    // The deadline counts from when the update is posted, loading a new worker included: 20 ms is too short for
    // that, so a small update goes to an inspector with the default deadline.
    const fresh = new UpdateInspector()
    try {
      assert.ok((await fresh.inspect(sampleUpdate())).items.length > 0)
    } finally {
      await fresh.close()
    }
  }
)

test(
  'updates posted ahead of one that brings the worker down are opened by a new worker; ' + 'only that one fails',
  async () => {
    const doc = new Y.Doc()
    const text = doc.getText('findings')
    for (let i = 0; i < 300_000; i++) text.insert(Math.floor(i / 2), 'x')
    const tooLarge = Y.encodeStateAsUpdate(doc)
    const inspector = new UpdateInspector()
    try {
      await inspector.inspect(sampleUpdate())
      const opened = [sampleUpdate(), tooLarge, sampleUpdate(), sampleUpdate()].map(async update => {
        try {
          return (await inspector.inspect(update)).items.length > 0 ? 'opened' : 'empty'
        } catch (error) {
          return (error as Error).name
        }
      })
      assert.equal(await Promise.all(opened), ['opened', 'UpdateRefusedError', 'opened', 'opened'])
    } finally {
      await inspector.close()
    }
  }
)

test.run()
