/**
 * `radmesh import PATH…` (files and folders of Part 10 files, with a progress bar and one line per refused
 * file) and `radmesh audit [--verify]`. Both talk to the node running on HOME.
 */
import { createReadStream, promises as fs } from 'node:fs'
import { Readable } from 'node:stream'
import { join } from 'node:path'
import { RadmeshError } from '../errors.ts'
import { parse, required } from './args.ts'
import { connectToNode, type NodeClient } from './client.ts'
import { Progress } from './progress.ts'

const IMPORT = 'radmesh import --home HOME PATH…'
const AUDIT = 'radmesh audit --home HOME [--verify] [--limit N]'
/** Files in flight at once: keeps the node's disk busy without queueing a whole folder in memory. */
const IMPORT_CONCURRENCY = 4

async function* filesIn(path: string): AsyncGenerator<string> {
  const stat = await fs.stat(path).catch(() => undefined)
  if (stat === undefined) throw new RadmeshError('RADMESH_USAGE', `${path} does not exist`)
  if (stat.isFile()) {
    yield path
    return
  }
  for (const entry of (await fs.readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const child = join(path, entry.name)
    if (entry.isDirectory()) yield* filesIn(child)
    else if (entry.isFile() && !entry.name.startsWith('.') && entry.name !== 'DICOMDIR') yield child
  }
}

/** Exits 1 when any file was refused (each is named on stderr), 0 otherwise. */
export async function importCommand(argv: string[], print: (line: string) => void): Promise<number> {
  const { values, positionals } = parse(argv, { home: { type: 'string' } }, IMPORT, true)
  const client = await connectToNode(required(values, 'home', IMPORT))
  if (positionals.length === 0)
    throw new RadmeshError('RADMESH_USAGE', `give at least one file or folder; usage: ${IMPORT}`)
  const files: string[] = []
  for (const path of positionals) for await (const file of filesIn(path)) files.push(file)
  let totalBytes = 0
  for (const file of files) totalBytes += (await fs.stat(file)).size
  const progress = new Progress('import', files.length, totalBytes)
  const counts = { stored: 0, duplicate: 0, 'kept-existing': 0, refused: 0 }
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++] as string
      const { size } = await fs.stat(file)
      try {
        const result = await sendFile(client, file, size)
        counts[result.outcome]++
      } catch (error) {
        if (
          !(error instanceof RadmeshError) ||
          error.code === 'RADMESH_NODE_NOT_RUNNING' ||
          error.code === 'RADMESH_INTERNAL'
        )
          throw error
        counts.refused++
        progress.log(`refused ${file}: ${error.message.replace(/^the node answered \d+: /, '')}`)
      }
      progress.advance(size)
    }
  }
  await Promise.all(Array.from({ length: IMPORT_CONCURRENCY }, worker))
  progress.done()
  print(
    `imported ${files.length} file(s): ${counts.stored} stored, ${counts.duplicate} already there, ` +
      `${counts['kept-existing']} kept the earlier object with the same UID, ${counts.refused} refused`
  )
  return counts.refused > 0 ? 1 : 0
}

/** One file, sent as it is read (a 2 GB file costs the CLI no more memory than a small one). */
async function sendFile(
  client: NodeClient,
  file: string,
  size: number
): Promise<{ outcome: 'stored' | 'duplicate' | 'kept-existing' }> {
  const body = Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>
  // 30 s, and a second for every 20 MB: a large file on a slow disk still gets there.
  return await client.request('POST', '/api/import', body, 'application/dicom', 30_000 + Math.ceil(size / 20e6) * 1000)
}

export async function auditCommand(argv: string[], print: (line: string) => void): Promise<void> {
  const { values } = parse(
    argv,
    { home: { type: 'string' }, verify: { type: 'boolean' }, limit: { type: 'string' } },
    AUDIT
  )
  const client = await connectToNode(required(values, 'home', AUDIT))
  const limit = typeof values['limit'] === 'string' ? values['limit'] : '100'
  const result = await client.request<{
    total: number
    records: Array<Record<string, unknown>>
    verify?: { ok: boolean; records: number; brokenAt?: number; problem?: string }
  }>('GET', `/api/audit?limit=${encodeURIComponent(limit)}${values['verify'] === true ? '&verify=1' : ''}`)
  for (const r of result.records) {
    const actor = r['actor'] as { type: string; id: string }
    const instances = (r['instances'] as string[] | undefined)?.length ?? 0
    print(
      `${String(r['seq']).padStart(6)} ${r['time']} ${r['eventCode']} ${r['action']} outcome=${r['outcome']} ` +
        `${actor.type}:${actor.id}${r['study'] === undefined ? '' : ` study=${r['study']}`}` +
        `${instances > 0 ? ` instances=${instances}` : ''}${r['detail'] === undefined ? '' : ` ${r['detail']}`}`
    )
  }
  print(`${result.records.length} of ${result.total} record(s) shown`)
  if (result.verify !== undefined) {
    if (!result.verify.ok)
      throw new RadmeshError(
        'RADMESH_AUDIT_BROKEN',
        `audit chain BROKEN at record ${result.verify.brokenAt}: ${result.verify.problem}`
      )
    print(`audit chain verified: ${result.verify.records} record(s), unbroken`)
  }
}
