/**
 * Builds consortia for tests through the real CLI: `consortium create`, `init`, `consortium admit`.
 */
import { join } from 'node:path'
import { radmeshOk, tempDir } from './processes.ts'

export interface TestConsortium {
  root: string
  dir: string
  /** init + admit (installed in HOME); returns the HOME. `extra` goes to admit, `initExtra` to init. */
  member (name: string, role: 'site' | 'radiologist', extra?: string[], initExtra?: string[]): Promise<string>
}

export async function createTestConsortium (name = 'Test Consortium'): Promise<TestConsortium> {
  const root = await tempDir()
  const dir = join(root, 'consortium')
  await radmeshOk(['consortium', 'create', '--dir', dir, '--name', name])
  let count = 0
  return {
    root,
    dir,
    async member (memberName, role, extra = [], initExtra = []) {
      const home = join(root, `member-${++count}`)
      await radmeshOk(['init', '--home', home, '--name', memberName, '--role', role, ...initExtra])
      await radmeshOk(['consortium', 'admit', '--dir', dir, '--home', home, ...extra])
      return home
    }
  }
}
