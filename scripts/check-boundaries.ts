/**
 * Import boundaries and cycles (STYLE.md §8), over every .ts file of node/, protocol/, viewer/, scripts/ and
 * test/, counting `import type`, `export … from` and `import()` alike:
 *
 *   protocol/   imports nothing outside protocol/, and no Node built-in (the browser viewer uses it too)
 *   viewer/     imports viewer/ and protocol/ only: it talks to its node over HTTP
 *   node/       never imports scripts/, test/ or viewer/ (but node/http/ the viewer's bundler, viewer/build.ts);
 *               within node/, a folder imports only those below it in NODE_LAYERS (docs/ARCHITECTURE.md)
 *   scripts/    never imports test/: what tests share with the demo, benchmarks and fuzzers is in scripts/lib/,
 *               which imports only node/ and protocol/
 *   everywhere  no file imports itself in a circle
 *
 *   node scripts/check-boundaries.ts [ROOT]     (ROOT: the checkout, by default the one this script is in)
 */
import { promises as fs } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import ts from 'typescript'

const FOLDERS = ['node', 'protocol', 'viewer', 'scripts', 'test']

/**
 * node/, top to bottom: a folder imports its own files and those of the folders below it, never one above or
 * beside it (worklist/ and reports/ are beside each other: the workflow and node.ts wire them together).
 * A path ending in .ts names one file, placed apart from its folder: the p2p host uses membership's handshake
 * and gater, while membership uses only p2p's penalties, its message reader and its flood.
 */
export const NODE_LAYERS: string[][] = [
  ['node/cli'],
  ['node/node.ts'],
  ['node/node-dicom.ts', 'node/node-http.ts'],
  ['node/node-options.ts'],
  ['node/http'],
  ['node/workflow'],
  ['node/worklist', 'node/reports'],
  ['node/crdt'],
  ['node/deid'],
  ['node/exchange'],
  ['node/archive'],
  ['node/p2p'],
  ['node/identity'],
  ['node/membership'],
  ['node/p2p/flood.ts'],
  ['node/p2p/penalties.ts', 'node/p2p/wire.ts'],
  ['node/dicom'],
  ['node/audit'],
  ['node/store'],
  // errors, files, hashing, the log, heap tuning: what every folder may use
  ['node/*.ts']
]

export interface Violation {
  file: string
  line: number
  message: string
}

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name)
    if (entry.isDirectory() && entry.name !== 'dist' && entry.name !== 'node_modules') yield* sourceFiles(path)
    else if (entry.isFile() && /\.ts$/.test(entry.name)) yield path
  }
}

/** The node/ layer a file is in (its index in NODE_LAYERS) and the name of its group, or undefined. */
function nodeGroup(file: string): { layer: number; group: string } | undefined {
  const parts = file.split('/')
  const candidates = parts.length === 2 ? [file, 'node/*.ts'] : [file, `node/${parts[1]}`]
  for (const candidate of candidates) {
    const layer = NODE_LAYERS.findIndex(groups => groups.includes(candidate))
    if (layer >= 0) return { layer, group: candidate }
  }
  return undefined
}

/** Why `from` may not import `to` (both relative to the root, with /), or undefined when it may. */
function boundary(from: string, to: string): string | undefined {
  const top = from.split('/')[0]
  const target = to.split('/')[0]
  if (top === 'protocol' && target !== 'protocol') {
    return 'protocol/ is shared with the browser: it imports only protocol/'
  }
  if (top === 'viewer' && target !== 'viewer' && target !== 'protocol') {
    return 'viewer/ imports only viewer/ and protocol/: it talks to its node over HTTP'
  }
  if (top === 'scripts' && target === 'test') {
    return 'scripts/ never imports test/: move what both use into scripts/lib/'
  }
  if (from.startsWith('scripts/lib/') && target !== 'node' && target !== 'protocol' && !to.startsWith('scripts/lib/')) {
    return 'scripts/lib/ is what the demo, benchmarks, fuzzers and tests share: it imports only node/ and protocol/'
  }
  if (top !== 'node') return undefined
  if (target === 'viewer' && from.startsWith('node/http/') && to === 'viewer/build.ts') return undefined
  if (target !== 'node' && target !== 'protocol') return `node/ never imports ${target}/`
  if (target === 'protocol') return undefined
  const mine = nodeGroup(from)
  const theirs = nodeGroup(to)
  if (mine === undefined) return `${dirname(from)}/ is in no layer: add it to NODE_LAYERS and docs/ARCHITECTURE.md`
  if (theirs === undefined || mine.group === theirs.group || theirs.layer > mine.layer) return undefined
  const where = theirs.layer === mine.layer ? 'beside' : 'above'
  return `${mine.group} imports ${theirs.group}, which is ${where} it (NODE_LAYERS: only those below)`
}

/** The first cycle through `start` within its strongly connected component, as a path back to `start`. */
function cycleThrough(start: string, graph: Map<string, string[]>, component: Set<string>): string[] {
  const previous = new Map<string, string>()
  const queue = [start]
  for (let i = 0; i < queue.length; i++) {
    const at = queue[i] as string
    for (const next of graph.get(at) ?? []) {
      if (!component.has(next)) continue
      if (next === start) {
        // Back from `at` to `start`, the only file reached without a previous one.
        const path = [at]
        for (let step = previous.get(at); step !== undefined; step = previous.get(step)) path.unshift(step)
        return [...path, start]
      }
      if (!previous.has(next)) {
        previous.set(next, at)
        queue.push(next)
      }
    }
  }
  return [start, start]
}

/** The strongly connected components of more than one file, or of a file that imports itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (file: string): void => {
    index.set(file, index.size)
    low.set(file, index.get(file) as number)
    stack.push(file)
    onStack.add(file)
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue
      if (!index.has(next)) {
        visit(next)
        low.set(file, Math.min(low.get(file) as number, low.get(next) as number))
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file) as number, index.get(next) as number))
      }
    }
    if (low.get(file) !== index.get(file)) return
    const component: string[] = []
    let member: string
    do {
      member = stack.pop() as string
      onStack.delete(member)
      component.push(member)
    } while (member !== file)
    if (component.length > 1 || (graph.get(file) ?? []).includes(file)) found.push(component.sort())
  }
  for (const file of [...graph.keys()].sort()) if (!index.has(file)) visit(file)
  return found
}

/** Every boundary crossed and every cycle in the tree at `root`. */
export async function checkBoundaries(root: string): Promise<Violation[]> {
  const violations: Violation[] = []
  const graph = new Map<string, string[]>()
  for (const folder of FOLDERS) {
    for await (const path of sourceFiles(join(root, folder))) {
      const file = relative(root, path).split(sep).join('/')
      const text = await fs.readFile(path, 'utf8')
      const lineOf = (position: number): number => text.slice(0, position).split('\n').length
      const imports: string[] = []
      for (const { fileName, pos } of ts.preProcessFile(text, true, true).importedFiles) {
        if (fileName.startsWith('node:') && (file.startsWith('protocol/') || file.startsWith('viewer/src/'))) {
          const message = `imports ${fileName}: it runs in the browser too, with no Node built-in`
          violations.push({ file, line: lineOf(pos), message })
        }
        if (!fileName.startsWith('.')) continue
        const target = relative(root, resolve(dirname(path), fileName))
          .split(sep)
          .join('/')
        imports.push(target)
        const why = boundary(file, target)
        if (why !== undefined) violations.push({ file, line: lineOf(pos), message: `imports ${target}: ${why}` })
      }
      graph.set(file, imports)
    }
  }
  for (const component of cycles(graph)) {
    const start = component[0] as string
    const path = cycleThrough(start, graph, new Set(component))
    violations.push({ file: start, line: 0, message: `circular import: ${path.join(' -> ')}` })
  }
  return violations
}

const root = process.argv[2] === undefined ? join(import.meta.dirname, '..') : resolve(process.argv[2])
const violations = await checkBoundaries(root)
for (const { file, line, message } of violations) {
  process.stderr.write(`${file}${line > 0 ? `:${line}` : ''}: ${message}\n`)
}
if (violations.length > 0) process.exit(1)
process.stdout.write('import boundaries and cycles: ok\n')
