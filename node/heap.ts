/**
 * Garbage collection tuned for a node that streams studies through big off-heap buffers (socket reads,
 * cipher output: about 1 MB per image) while allocating little on the V8 heap:
 *
 * - V8 starts a full collection whenever 64 MB more off-heap memory is alive than after the last one,
 *   and buffers that are already garbage count until a collection frees them. Counting that memory in the
 *   heap's global limit instead cuts the full collections of an ingest to a third or less.
 * - The heap, off-heap memory counted, may grow by 30 % of what was alive after a full collection before
 *   the next one (V8's own factor varies). 100 % had halved an ingest's full collections when its buffers
 *   were left to the collector; with them released (`release`), an ingest is as fast at 50 %, and a fetch's
 *   holder peaked 35 MB lower for about 0.2 s more CPU over 210 MB. At 30 % the reader of a 2.10 GB study
 *   peaked at 241-248 MB (three runs) against 247-253 MB at 50 % (five), what libp2p's own garbage leaves
 *   over a long fetch; an ingest (1.27 s against 1.26 s) and the 100,000-case history's start and cold sync
 *   were the same within the machine's noise.
 * - Dead buffers are young: a minor collection frees them at a fraction of a millisecond, but V8 rarely
 *   runs one, as the heap itself barely grows. `offHeapGarbage` asks for one after every 16 MB, which
 *   keeps the peak RSS of a 2 GB ingest flat and leaves no full collection during a 400-image ingest.
 *   Buffers that outlive two minor collections wait for a full one: those this code can, it releases.
 *
 * - The young generation is 8 MB a semi-space (V8 sizes it up to 32 MB from the machine's memory): set by the
 *   launcher, bin/radmesh, which replaces its process with itself and the flag, as V8 takes it only at start.
 * - glibc's allocator gets `MALLOC_ENV` from the launcher too (see there).
 *
 * The figures behind each choice are in docs/PERFORMANCE.md. `RADMESH_HEAP_TUNING=0` leaves V8's
 * defaults, for comparison.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const MINOR_GC_EVERY_BYTES = 16 * 1024 * 1024
const HEAP_GROWING_PERCENT = 30
/** The V8 flags `tuneHeap` sets, as the benchmarks give them to processes they compare a node with. */
export const HEAP_FLAGS = [
  `--heap-growing-percent=${HEAP_GROWING_PERCENT}`,
  '--external-memory-accounted-in-global-limit'
]

/**
 * glibc's allocator settings the launcher (bin/radmesh) gives `radmesh start`, which the benchmarks give the
 * processes they compare a node with:
 *
 * - Buffers up to 4 MiB (an image's, a chunk's, a cipher's output) come from the allocator's heaps, which reuse
 *   freed pages; larger ones are mapped. Mapping every buffer of 256 KiB and more (the setting before) gave its
 *   pages back at once, but each new one then cost a page fault per 4 KiB page, and on a virtual machine whose
 *   host backs guest memory lazily that was most of a fetch's CPU: a 2.10 GB fetch took 59.5 s (site 52 CPU
 *   seconds, 1.98 million minor faults) against 23-29 s.
 * - Two arenas: glibc gives each thread that allocates (libuv's pool, LevelDB's) an arena of its own, up to 8
 *   a core, each keeping its freed pages. With two, the 2.10 GB fetch peaked at 236-237 MB at both ends against
 *   246-251 MB with as many as glibc likes (docs/PERFORMANCE.md).
 * - Up to 16 MiB free at the top of an arena stay with it (glibc's default gives back all over 128 KiB): an
 *   image's buffers freed there and allocated again a moment later had each page faulted in anew. The site's
 *   minor faults over a 400-image fetch fell from 17,000 to 1,400-2,100 and the fetch from 3.08-3.12 s to
 *   2.49-2.84 s; the 2.10 GB fetch took 22.7-24.1 s and peaked at 243-245 / 242-248 MB (two runs) against
 *   236-240.
 *
 * A value of one's own for any of them is kept; `RADMESH_HEAP_TUNING=0` leaves glibc's defaults.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(4 * 1024 * 1024),
  MALLOC_ARENA_MAX: '2',
  MALLOC_TRIM_THRESHOLD_: String(16 * 1024 * 1024)
}

type Collect = (options: { type: 'minor' | 'major' }) => void

let collect: Collect | undefined
let garbage = 0
let scheduled = false

/** Called once, first thing, by `radmesh start`. */
export function tuneHeap(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['RADMESH_HEAP_TUNING'] === '0') return false
  for (const flag of HEAP_FLAGS) setFlagsFromString(flag)
  setFlagsFromString('--expose-gc')
  collect = runInNewContext('gc') as Collect
  setFlagsFromString('--no-expose-gc')
  return true
}

/** Notes that `bytes` of off-heap buffers became garbage; a minor collection follows every 16 MB. */
export function offHeapGarbage(bytes: number): void {
  if (collect === undefined) return
  garbage += bytes
  if (garbage < MINOR_GC_EVERY_BYTES || scheduled) return
  scheduled = true
  setImmediate(() => {
    scheduled = false
    garbage = 0
    collect?.({ type: 'minor' })
  })
}

/** Below this a buffer is not worth releasing early (and small ones may share Node's allocation pool). */
const RELEASE_MIN_BYTES = 64 * 1024

/**
 * Frees a dead buffer's memory now. A buffer that outlives two minor collections (a chunk waiting its turn in
 * a pipeline does) is freed only by a full one, and a fetch makes its garbage faster than V8 runs those: 80 to
 * 110 MB of dead chunk buffers piled up between full collections on both ends of a transfer, and glibc kept
 * the pages. Releasing detaches the buffer's ArrayBuffer, so every view of it reads as empty from then on.
 *
 * Only for a buffer this code made (a cipher's or zstd's output, a concatenation) and that nothing can still
 * read, natively included: never one handed to an asynchronous write or to zstd that has not finished. A view
 * of part of a larger ArrayBuffer, or of a small one, is left to the collector.
 */
export function release(buffer: Uint8Array): void {
  const whole = buffer.buffer
  if (!(whole instanceof ArrayBuffer) || whole.detached) return
  if (buffer.byteOffset !== 0 || whole.byteLength !== buffer.byteLength || whole.byteLength < RELEASE_MIN_BYTES) return
  whole.transfer(0)
}
