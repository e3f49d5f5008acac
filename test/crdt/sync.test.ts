/**
 * The sync service's pieces that need no network: a step 2 larger than one sync message goes in parts of at
 * most MAX_STEP2_BYTES, one per author, which together make the same document; a member lacking nothing
 * gets nothing (or the deletions alone, which a state vector does not show).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { step2Parts } from '../../node/crdt/step2.ts'
import { MAX_STEP2_BYTES } from '../../protocol/collab/sync.ts'

test(
  'a difference larger than one message goes in parts within the bound, one per author, ' +
    'that make the same document',
  () => {
    const doc = new Y.Doc()
    // Six authors of about 1 MB each: 6 MB in all, over the 4 MiB one message holds.
    for (let author = 0; author < 6; author++) {
      const writer = new Y.Doc()
      writer.clientID = 1000 + author
      Y.applyUpdate(writer, Y.encodeStateAsUpdate(doc))
      writer.getText(`section-${author}`).insert(0, String.fromCharCode(97 + author).repeat(1_000_000))
      Y.applyUpdate(doc, Y.encodeStateAsUpdate(writer, Y.encodeStateVector(doc)))
    }
    doc.getText('section-0').delete(0, 10)
    const empty = Y.encodeStateVector(new Y.Doc())
    const parts = step2Parts(doc, empty)
    assert.ok(Y.encodeStateAsUpdate(doc).byteLength > MAX_STEP2_BYTES, 'the whole would not fit one message')
    assert.ok(parts.length >= 2)
    for (const part of parts) assert.ok(part.byteLength <= MAX_STEP2_BYTES, `a part of ${part.byteLength} bytes`)
    const copy = new Y.Doc()
    for (const part of parts.reverse()) Y.applyUpdate(copy, part)
    for (let author = 0; author < 6; author++)
      assert.is(copy.getText(`section-${author}`).toString(), doc.getText(`section-${author}`).toString())
    // A deletion does not move a state vector: a member with the same one gets the delete set alone.
    const deletesOnly = step2Parts(doc, Y.encodeStateVector(doc))
    assert.is(deletesOnly.length, 1)
    assert.is(Y.decodeUpdate(deletesOnly[0] as Uint8Array).structs.length, 0, 'no structs, only deletions')
    const untouched = new Y.Doc()
    untouched.getText('t').insert(0, 'same')
    assert.equal(step2Parts(untouched, Y.encodeStateVector(untouched)), [], 'nothing for a member that lacks nothing')
    const small = new Y.Doc()
    small.getText('t').insert(0, 'short')
    assert.is(step2Parts(small, empty).length, 1, 'a small difference goes whole')
  }
)

test.run()
