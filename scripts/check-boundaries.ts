/**
 * Import boundaries (STYLE.md §8): `protocol/` imports nothing of `node/` or `viewer/` and no Node
 * built-in (the browser viewer uses it too); `viewer/` never imports `node/`; `scripts/` (the demo,
 * benchmarks, fuzzers and their shared `scripts/lib/`) never imports `test/`: what tests share with them
 * lives in `scripts/lib/` and the tests import it from there. Circular imports are checked by dpdm in `npm test`.
 */
import { promises as fs } from 'node:fs'
import { join, relative } from 'node:path'

const ROOT = join(import.meta.dirname, '..')
const RULES: Array<{ folder: string, forbidden: RegExp, why: string }> = [
  {
    folder: 'protocol',
    forbidden: /from '(\.\.\/)+(node|viewer)\/|from 'node:/,
    why: 'protocol/ is shared with the browser: no node/, viewer/ or node: imports'
  },
  { folder: 'viewer', forbidden: /from '(\.\.\/)+node\//, why: 'viewer/ talks to the node over HTTP only' },
  {
    folder: 'scripts',
    forbidden: /from '(\.\.\/)+test\/|import\('(\.\.\/)+test\//,
    why: 'scripts/ never imports test/: move what both use into scripts/lib/'
  }
]

async function * sourceFiles (dir: string): AsyncGenerator<string> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name)
    if (entry.isDirectory() && entry.name !== 'dist' && entry.name !== 'node_modules') yield * sourceFiles(path)
    else if (/\.tsx?$/.test(entry.name)) yield path
  }
}

let violations = 0
for (const rule of RULES) {
  for await (const file of sourceFiles(join(ROOT, rule.folder))) {
    const lines = (await fs.readFile(file, 'utf8')).split('\n')
    lines.forEach((line, i) => {
      if (rule.forbidden.test(line)) {
        violations++
        process.stderr.write(`${relative(ROOT, file)}:${i + 1}: ${rule.why}\n  ${line.trim()}\n`)
      }
    })
  }
}
if (violations > 0) process.exit(1)
process.stdout.write('import boundaries: ok\n')
