/**
 * The pixels of scripts/generate-ct.ts: a head phantom in stored values (HU - RescaleIntercept), 16-bit
 * signed. Skull, brain with a faint texture and ventricles, and a bright blob that moves on a helix and swells
 * and shrinks through the scan, with seeded noise: the same slice and seed give the same pixels.
 */

/** Stored value = HU - RESCALE_INTERCEPT. */
export const RESCALE_INTERCEPT = -1024

export interface Phantom {
  rows: number
  columns: number
  /** mm per pixel, both directions */
  spacing: number
  /** Brain texture: a product of a row term and a column term, precomputed. */
  rowTexture: Int16Array
  columnTexture: Int16Array
}

export function makePhantom(rows: number, columns: number, spacing: number): Phantom {
  const rowTexture = new Int16Array(rows)
  const columnTexture = new Int16Array(columns)
  for (let y = 0; y < rows; y++)
    rowTexture[y] = Math.round(3 * Math.sin((y * spacing) / 9) + 2 * Math.sin((y * spacing) / 3.7))
  for (let x = 0; x < columns; x++)
    columnTexture[x] = Math.round(2 * Math.cos((x * spacing) / 7.3) + 2 * Math.sin((x * spacing) / 4.1))
  return { rows, columns, spacing, rowTexture, columnTexture }
}

/** Columns [from, to) of row `y` inside the ellipse centred (cx, cy) with semi-axes (a, b), all in pixels. */
function span(y: number, cx: number, cy: number, a: number, b: number, columns: number): [number, number] {
  if (a <= 0 || b <= 0) return [0, 0]
  const dy = (y - cy) / b
  if (dy * dy >= 1) return [0, 0]
  const half = a * Math.sqrt(1 - dy * dy)
  return [Math.max(0, Math.ceil(cx - half)), Math.min(columns, Math.floor(cx + half) + 1)]
}

/**
 * Fills `pixels` with slice `t` (0 = lowest, 1 = top of the scan range) of the phantom.
 * `noise` is the standard deviation-ish amplitude in HU, `state` the xorshift32 seed.
 */
export function renderSlice(phantom: Phantom, pixels: Int16Array, t: number, noise: number, state: number): void {
  const { rows, columns, spacing, rowTexture, columnTexture } = phantom
  const mm = (v: number): number => v / spacing
  const hu = (v: number): number => v - RESCALE_INTERCEPT
  const cx = (columns - 1) / 2
  const cy = (rows - 1) / 2
  // Head: an ellipsoid, from the skull base (t = 0) to near the vertex (t = 1).
  const zz = -0.75 + 1.65 * t
  const scale = Math.sqrt(Math.max(0, 1 - zz * zz))
  const headA = mm(72 * scale)
  const headB = mm(92 * scale)
  const skull = mm(6.5)
  const headCy = cy + mm(4)
  // Ventricles: two ellipses either side of the midline, in the middle of the head.
  const ventricleSize = Math.max(0, 1 - ((zz - 0.15) / 0.35) ** 2)
  const ventricleA = mm(6) * ventricleSize
  const ventricleB = mm(22) * ventricleSize
  // Blob: moves on a helix and swells and shrinks through the scan.
  const blobAngle = 2 * Math.PI * 1.5 * t
  const blobX = cx + mm(28) * Math.cos(blobAngle) * scale
  const blobY = headCy + mm(36) * Math.sin(blobAngle) * scale
  const blobR = mm(4 + 10 * Math.sin(Math.PI * t)) * scale
  const fovRadius = Math.min(rows, columns) / 2

  const outside = hu(-2000)
  const air = hu(-1000)
  const bone = hu(1100)
  const brain = hu(34)
  const csf = hu(6)
  const blob = hu(220 + Math.round(60 * Math.cos(3 * Math.PI * t)))
  // Triangular noise from two bytes of xorshift32: ((b0 + b1 - 255) * k) >> 8 spans about ±noise HU.
  const k = Math.max(0, Math.round(noise * 2))
  let s = state >>> 0 || 1

  for (let y = 0; y < rows; y++) {
    const row = pixels.subarray(y * columns, (y + 1) * columns)
    row.fill(outside)
    const [fovL, fovR] = span(y, cx, cy, fovRadius, fovRadius, columns)
    row.fill(air, fovL, fovR)
    const [outL, outR] = span(y, cx, headCy, headA, headB, columns)
    row.fill(bone, outL, outR)
    const [inL, inR] = span(y, cx, headCy, headA - skull, headB - skull, columns)
    const rt = rowTexture[y] ?? 0
    for (let x = inL; x < inR; x++) row[x] = brain + rt * (columnTexture[x] ?? 0)
    if (ventricleSize > 0 && inR > inL) {
      const [lL, lR] = span(y, cx - mm(8), headCy - mm(4), ventricleA, ventricleB, columns)
      row.fill(csf, lL, lR)
      const [rL, rR] = span(y, cx + mm(8), headCy - mm(4), ventricleA, ventricleB, columns)
      row.fill(csf, rL, rR)
    }
    if (inR > inL) {
      const [bL, bR] = span(y, blobX, blobY, blobR, blobR, columns)
      row.fill(blob, Math.max(bL, inL), Math.min(bR, inR))
    }
    if (k > 0) {
      for (let x = fovL; x < fovR; x++) {
        s ^= s << 13
        s ^= s >>> 17
        s ^= s << 5
        row[x] = (row[x] ?? 0) + ((((s & 0xff) + ((s >>> 8) & 0xff) - 255) * k) >> 8)
      }
    }
  }
}
