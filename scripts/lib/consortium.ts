/**
 * A throwaway consortium in a temporary folder, built through the real CLI (`consortium create`, `init`,
 * `consortium admit`), for tests, benchmarks and fuzzing. Its folder is removed when the process exits.
 */
import { join } from 'node:path'
import { radmeshOk } from './cli.ts'
import { tempDir } from './temp.ts'

export interface ScratchConsortium {
  /** the temporary folder: the consortium in `dir`, each member's HOME beside it */
  root: string
  dir: string
  /** init + admit (installed in HOME); returns the HOME. `extra` goes to admit, `initExtra` to init. */
  member(name: string, role: 'site' | 'radiologist', extra?: string[], initExtra?: string[]): Promise<string>
}

export async function createScratchConsortium(name = 'Test Consortium'): Promise<ScratchConsortium> {
  const root = await tempDir()
  const dir = join(root, 'consortium')
  await radmeshOk(['consortium', 'create', '--dir', dir, '--name', name])
  let count = 0
  return {
    root,
    dir,
    async member(memberName, role, extra = [], initExtra = []) {
      const home = join(root, `member-${++count}`)
      await radmeshOk(['init', '--home', home, '--name', memberName, '--role', role, ...initExtra])
      await radmeshOk(['consortium', 'admit', '--dir', dir, '--home', home, ...extra])
      return home
    }
  }
}
