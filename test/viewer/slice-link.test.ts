/**
 * Linked scrolling of a current study and its prior: by slice position along the normal when both stacks are
 * axial in one Frame of Reference, by relative index otherwise, read back from DICOM JSON as WADO-RS gives it.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { DicomJson } from '../../viewer/src/image/frame-info.ts'
import { linkSlices, relativeIndex, type SliceGeometry, sliceGeometry } from '../../viewer/src/study/slice-link.ts'

const AXIAL: [number, number, number, number, number, number] = [1, 0, 0, 0, 1, 0]
const CORONAL: [number, number, number, number, number, number] = [1, 0, 0, 0, 0, -1]

/** A stack of `count` slices from z = `z0`, `step` mm apart. */
function stack(
  count: number,
  z0: number,
  step: number,
  frameOfReference = '1.2.3',
  orientation: SliceGeometry['orientation'] = AXIAL
): SliceGeometry[] {
  return Array.from({ length: count }, (_, i) => ({
    frameOfReference,
    position: [-120, -120, z0 + i * step] as [number, number, number],
    orientation,
    sliceLocation: undefined
  }))
}

test('geometry is read from DICOM JSON: position, orientation, slice location, frame of reference', () => {
  const json: DicomJson = {
    '00200032': { vr: 'DS', Value: [-124.5, -124.5, '-27.5'] },
    '00200037': { vr: 'DS', Value: [1, 0, 0, 0, 1, 0] },
    '00200052': { vr: 'UI', Value: ['2.25.7'] },
    '00201041': { vr: 'DS', Value: [-27.5] }
  }
  assert.equal(sliceGeometry(json), {
    frameOfReference: '2.25.7',
    position: [-124.5, -124.5, -27.5],
    orientation: [1, 0, 0, 0, 1, 0],
    sliceLocation: -27.5
  })
  assert.equal(sliceGeometry({ '00200032': { vr: 'DS', Value: [1, 2] } }), {
    frameOfReference: '',
    position: undefined,
    orientation: undefined,
    sliceLocation: undefined
  })
})

test('axial stacks in one frame of reference link by position: 2.5 mm slices against 5 mm ones, offset', () => {
  const current = stack(40, -50, 2.5) // -50 … 47.5
  const prior = stack(12, -20, 5) // -20 … 35
  const link = linkSlices(current, prior)
  assert.is(link.method, 'position')
  assert.is(link.map(0, 'b'), 0, 'below the prior, its first slice')
  assert.is(link.map(12, 'b'), 0, 'z = -20 is the prior slice 0')
  assert.is(link.map(16, 'b'), 2, 'z = -10 is the prior slice 2')
  assert.is(link.map(17, 'b'), 2, 'z = -7.5 is as near -10 as -5: a tie keeps the first')
  assert.is(link.map(18, 'b'), 3, 'z = -5')
  assert.is(link.map(39, 'b'), 11, 'above the prior, its last slice')
  assert.is(link.map(3, 'a'), 18, 'back the other way: z = -5 is the current slice (-5 + 50) / 2.5')
})

test('position matching follows the slice normal, not the stack order: a stack sorted head first', () => {
  const current = stack(10, 0, 5) // 0 … 45, feet first
  const prior = stack(10, 45, -5) // 45 … 0, head first
  const link = linkSlices(current, prior)
  assert.is(link.method, 'position')
  assert.is(link.map(0, 'b'), 9)
  assert.is(link.map(9, 'b'), 0)
  // A tilted gantry (20°) is still axial; locations are read along the tilted normal.
  const tilt = (20 * Math.PI) / 180
  const tilted = stack(10, 0, 5, '1.2.3', [1, 0, 0, 0, Math.cos(tilt), Math.sin(tilt)])
  assert.is(linkSlices(current, tilted).method, 'position')
})

test('slice location stands in for a missing position in an axial stack', () => {
  const current = stack(5, 0, 10)
  const prior = stack(5, 20, 10).map(g => ({ ...g, sliceLocation: g.position?.[2], position: undefined }))
  const link = linkSlices(current, prior)
  assert.is(link.method, 'position')
  assert.is(link.map(2, 'b'), 0, 'z = 20 is the prior slice 0')
  assert.is(link.map(4, 'b'), 2)
})

test('different frames of reference, other planes or no geometry link by relative index, and say why', () => {
  const other = linkSlices(stack(40, -50, 2.5, '1.2.3'), stack(12, -20, 5, '9.9.9'))
  assert.is(other.method, 'index')
  assert.is(other.reason, 'different frames of reference')
  assert.is(other.map(0, 'b'), 0)
  assert.is(other.map(39, 'b'), 11)
  assert.is(other.map(20, 'b'), 6, '20 / 39 of the way is 5.6 of 11: slice 6')
  assert.is(other.map(11, 'a'), 39)

  const coronalStack = stack(10, 0, 5, '1.2.3', CORONAL).map((g, i) => ({
    ...g,
    position: [-120, -60 + i * 5, 100] as [number, number, number]
  }))
  const coronal = linkSlices(stack(10, 0, 5), coronalStack)
  assert.equal([coronal.method, coronal.reason], ['index', 'not both axial'])

  const bare = stack(10, 0, 5).map(g => ({ ...g, position: undefined }))
  const none = linkSlices(bare, stack(10, 0, 5))
  assert.equal([none.method, none.reason], ['index', 'the images do not say where they are'])

  // One multi-frame object: every frame carries the first frame's position, so the stack is not placed.
  const multiframe = stack(1, 0, 5)
  const flat = linkSlices(Array(20).fill(multiframe[0]), stack(10, 0, 5))
  assert.is(flat.method, 'index')
})

test('relative index reads a stack sorted the other way backwards, so head goes with head', () => {
  const link = linkSlices(stack(10, 0, 5, '1.2.3'), stack(5, 40, -10, '7.7.7'))
  assert.is(link.method, 'index')
  assert.is(link.map(0, 'b'), 4)
  assert.is(link.map(9, 'b'), 0)
  assert.is(relativeIndex(5, 1, 8), 0, 'a one-image stack maps to the start')
  assert.is(relativeIndex(0, 8, 1), 0)
  assert.is(relativeIndex(99, 10, 5), 4, 'out of range is clamped')
})

test.run()
