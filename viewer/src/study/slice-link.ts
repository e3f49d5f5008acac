/**
 * Which image of one stack goes with an image of another, for linked scrolling of a current study and its prior.
 * Two ways, chosen per pair of stacks:
 *
 *   position  both stacks axial (slice normal within 30° of the patient's foot-head axis, so a tilted head CT
 *             still counts) in the same Frame of Reference, every image placed: each image's location is its
 *             ImagePositionPatient along its stack's normal (or its SliceLocation when a file of an axial
 *             stack has no position), and an image goes with the image of the other stack at the nearest location.
 *             Only in one Frame of Reference do the same coordinates mean the same place in the patient.
 *   index     otherwise (different Frames of Reference, as two visits almost always are; other planes; missing
 *             geometry): the same relative place in the stack, first to first and last to last. When both
 *             stacks are placed along the foot-head axis but sorted in opposite directions, one is read backwards,
 *             so head still goes with head.
 *
 * Pure: no DOM, tested in Node (test/viewer/slice-link.test.ts).
 */
import { type DicomJson, text, values } from '../image/frame-info.ts'

export interface SliceGeometry {
  frameOfReference: string
  /** ImagePositionPatient (0020,0032), mm */
  position: [number, number, number] | undefined
  /** ImageOrientationPatient (0020,0037): row then column direction cosines */
  orientation: [number, number, number, number, number, number] | undefined
  /** SliceLocation (0020,1041), mm */
  sliceLocation: number | undefined
}

export type LinkMethod = 'position' | 'index'

export interface SliceLink {
  method: LinkMethod
  /** why this method, for the reader */
  reason: string
  /** the index in stack `to` that goes with `index` in the other stack */
  map(index: number, to: 'a' | 'b'): number
}

/** cos 30°: how far from the foot-head axis a slice normal may lean for the stack to count as axial. */
const AXIAL_COSINE = Math.cos((30 * Math.PI) / 180)

function numbers(json: DicomJson, tag: string, count: number): number[] | undefined {
  const found = values(json, tag).map(Number)
  return found.length === count && found.every(Number.isFinite) ? found : undefined
}

/** The geometry of one image from its DICOM JSON (frame-level geometry of enhanced multi-frame objects is not read). */
export function sliceGeometry(json: DicomJson): SliceGeometry {
  const location = numbers(json, '00201041', 1)
  return {
    frameOfReference: text(json, '00200052').trim(),
    position: numbers(json, '00200032', 3) as SliceGeometry['position'],
    orientation: numbers(json, '00200037', 6) as SliceGeometry['orientation'],
    sliceLocation: location?.[0]
  }
}

/** The slice normal (row × column), pointing headwards, or undefined without an orientation. */
function headwardNormal(geometry: SliceGeometry): [number, number, number] | undefined {
  const o = geometry.orientation
  if (o === undefined) return undefined
  const [r0, r1, r2, c0, c1, c2] = o
  const n: [number, number, number] = [r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0]
  const length = Math.hypot(...n)
  if (length < 1e-6) return undefined
  // DICOM's patient axes are L, P, S: headwards is +z.
  const sign = n[2] < 0 ? -1 : 1
  return [(sign * n[0]) / length, (sign * n[1]) / length, (sign * n[2]) / length]
}

interface Stack {
  /** each image's location along the headward axis, or undefined when the stack is not placed */
  locations: number[] | undefined
  axial: boolean
  frameOfReference: string | undefined
}

function readStack(images: SliceGeometry[]): Stack {
  const normal = images.map(headwardNormal).find(n => n !== undefined)
  const axial = normal !== undefined && normal[2] >= AXIAL_COSINE
  const locations: number[] = []
  for (const image of images) {
    if (image.position !== undefined && normal !== undefined)
      locations.push(image.position[0] * normal[0] + image.position[1] * normal[1] + image.position[2] * normal[2])
    else if (image.sliceLocation !== undefined && axial) locations.push(image.sliceLocation)
    else break
  }
  const frames = new Set(images.map(i => i.frameOfReference))
  const [frame] = frames
  return {
    // A stack whose images all sit at one place (a multi-frame object read from its first frame) is not placed.
    locations:
      locations.length === images.length && images.length > 0 && new Set(locations).size > 1 ? locations : undefined,
    axial,
    frameOfReference: frames.size === 1 && frame !== '' ? frame : undefined
  }
}

function nearest(locations: number[], location: number): number {
  let best = 0
  for (let i = 1; i < locations.length; i++)
    if (Math.abs((locations[i] as number) - location) < Math.abs((locations[best] as number) - location)) best = i
  return best
}

/** The index in a stack of `count` images at the same relative place as `index` of `from` images. */
export function relativeIndex(index: number, from: number, count: number, reversed = false): number {
  if (count <= 1) return 0
  const t = from <= 1 ? 0 : Math.min(1, Math.max(0, index / (from - 1)))
  return Math.round((reversed ? 1 - t : t) * (count - 1))
}

/** Stack direction along the headward axis: +1 head last, -1 head first, 0 when unknown. */
function direction(locations: number[] | undefined): number {
  if (locations === undefined) return 0
  return Math.sign((locations.at(-1) as number) - (locations[0] as number))
}

/** How to link stacks `a` and `b` (each image's geometry, in stack order). */
export function linkSlices(a: SliceGeometry[], b: SliceGeometry[]): SliceLink {
  const stackA = readStack(a)
  const stackB = readStack(b)
  const countOf = { a: a.length, b: b.length }
  let reason: string
  if (stackA.locations === undefined || stackB.locations === undefined) reason = 'the images do not say where they are'
  else if (!stackA.axial || !stackB.axial) reason = 'not both axial'
  else if (stackA.frameOfReference === undefined || stackA.frameOfReference !== stackB.frameOfReference)
    reason = 'different frames of reference'
  else {
    const locations = { a: stackA.locations, b: stackB.locations }
    return {
      method: 'position',
      reason: 'same frame of reference, both axial',
      map: (index, to) => {
        const from = to === 'a' ? locations.b : locations.a
        const location = from[Math.min(from.length - 1, Math.max(0, index))] as number
        return nearest(locations[to], location)
      }
    }
  }
  const da = direction(stackA.axial ? stackA.locations : undefined)
  const db = direction(stackB.axial ? stackB.locations : undefined)
  const reversed = da !== 0 && db !== 0 && da !== db
  return {
    method: 'index',
    reason,
    map: (index, to) => relativeIndex(index, to === 'a' ? countOf.b : countOf.a, countOf[to], reversed)
  }
}
