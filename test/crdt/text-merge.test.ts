/**
 * The three-way merge behind `PUT …/report` with a `base`: a change that does not meet what others wrote
 * since the base is made around it, whatever the order; one that overlaps or touches theirs is refused.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mergeEdit } from '../../node/crdt/text-merge.ts'

const base = 'No haemorrhage.'
const before = 'Early ischaemic change in the right insula. No haemorrhage.'
const after = 'No haemorrhage. Hyperdense right MCA.'

test('two changes apart merge, in either order, to the same text', () => {
  const both = 'Early ischaemic change in the right insula. No haemorrhage. Hyperdense right MCA.'
  assert.is(mergeEdit(base, before, after), both, 'a prefix written onto a text given a suffix')
  assert.is(mergeEdit(base, after, before), both, 'a suffix written onto a text given a prefix')
  assert.is(
    mergeEdit(base, 'No acute haemorrhage.', 'No haemorrhage seen.'),
    'No acute haemorrhage seen.',
    'two words in one sentence'
  )
  assert.is(mergeEdit('A. B. C.', 'A. X. B. C.', 'A. B. C. D.'), 'A. X. B. C. D.')
  assert.is(mergeEdit('A. B. C. D.', 'A. C. D.', 'A. B. C. E.'), 'A. C. E.', 'a deletion before their replacement')
  assert.is(mergeEdit('A. B. C. D.', 'A. B. C. E.', 'A. C. D.'), 'A. C. E.', 'a replacement after their deletion')
})

test("nothing changed on one side: the other side's text", () => {
  assert.is(mergeEdit(base, before, base), before)
  assert.is(mergeEdit(base, base, after), after)
  assert.is(mergeEdit(base, after, after), after, 'the same change already made')
  assert.is(mergeEdit('', 'Findings.', ''), 'Findings.')
})

test('changes that overlap or touch are a conflict', () => {
  assert.is(mergeEdit(base, 'No acute haemorrhage.', 'No bleed.'), undefined, 'ours inserts where theirs replaces')
  assert.is(
    mergeEdit(base, 'No haemorrhage or mass.', 'No haemorrhage seen.'),
    undefined,
    'both insert at the same place'
  )
  assert.is(
    mergeEdit(base, `${base} A.`, `${base} B.`),
    undefined,
    'both add at the end: which comes first is not known'
  )
  assert.is(mergeEdit(base, 'No acute haemorrhage.', `Early change. ${base} MCA.`), undefined, 'theirs wraps ours')
  assert.is(mergeEdit(base, '', after), undefined, 'ours deletes what theirs builds on')
})

test.run()
