/**
 * Temporary folders for tests, benchmarks and fuzzing, removed when this process exits: a full test run makes
 * a few GB of HOMEs and studies, and a developer's disk filled up with them once. `RADMESH_KEEP_TEST_DIRS=1`
 * keeps them, to look at a failure.
 */
import { promises as fs, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dirs = new Set<string>()
process.on('exit', () => {
  if (process.env['RADMESH_KEEP_TEST_DIRS'] === '1') return
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
    } catch {}
  }
})

/** A new empty folder under the system's temporary folder, removed at exit. */
export async function tempDir(prefix = 'radmesh-test-'): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), prefix))
  dirs.add(dir)
  return dir
}
