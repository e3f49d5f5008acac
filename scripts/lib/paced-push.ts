/**
 * A modality at scanner pace: DCMTK storescu sends a study's files one C-STORE at a time, `perSecond` of them a
 * second (one association each, as a CT console sends slices while it reconstructs them), and says when each
 * was answered. For the STAT streaming test and `npm run bench -- tat`.
 */
import { storescu } from './dcmtk.ts'

export interface PacedPush {
  /** when storescu began (ms, performance.now()) */
  startedAt: number
  /** when each file's C-STORE was answered Success (ms, performance.now()), in the order sent */
  answeredAt: number[]
}

/**
 * Sends `files` to AE@127.0.0.1:port in order, file i no sooner than `startedAt + i * 1000 / perSecond`; throws
 * naming the file storescu failed on. `beforeFile(i)` may hold the push before file i (a test's checkpoint).
 */
export async function pushPaced(
  port: number,
  aeTitle: string,
  files: string[],
  perSecond: number,
  beforeFile?: (index: number) => Promise<void>
): Promise<PacedPush> {
  const startedAt = performance.now()
  const answeredAt: number[] = []
  let due = startedAt
  for (const [i, file] of files.entries()) {
    const wait = due - performance.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
    if (beforeFile !== undefined) {
      const held = performance.now()
      await beforeFile(i)
      due += performance.now() - held
    }
    const sent = await storescu(port, aeTitle, [file])
    if (sent.code !== 0) throw new Error(`storescu failed on ${file} (exit ${sent.code}): ${sent.stderr.trim()}`)
    answeredAt.push(performance.now())
    due += 1000 / perSecond
  }
  return { startedAt, answeredAt }
}
