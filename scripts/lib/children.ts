/**
 * The child processes a script, benchmark or test starts: none outlives it. Each one registered here is
 * killed when this process exits, whatever happened; `stopChildren` stops them all gracefully first (a demo
 * on Ctrl-C or SIGTERM, a script that failed half-way).
 */
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/** The environment of every child: ours, less the colour switches a test runner sets (Node warns when both are set). */
const { FORCE_COLOR: _force, NO_COLOR: _no, ...inherited } = process.env
export const childEnv: NodeJS.ProcessEnv = inherited

/** How long `stopChildren` waits for a child after SIGTERM before it kills it. */
const STOP_GRACE_MS = 10_000

const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

const running = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null

/** Registers `child`: it is killed when this process exits, and forgotten once it exits by itself. */
export function ownChild<T extends ChildProcess>(child: T): T {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Sends SIGTERM to `child` and waits until it has exited; SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (!running(child)) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  try {
    await exited
  } finally {
    clearTimeout(timer)
  }
}

/** SIGKILL, as a crash or a power cut would end it, and waits until it has exited. */
export async function killChild(child: ChildProcess): Promise<void> {
  if (!running(child)) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

/** Stops every child still running, all at once (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopChildren(graceMs = STOP_GRACE_MS): Promise<void> {
  await Promise.all(
    [...children].map(async child => {
      await stopChild(child, graceMs)
    })
  )
}
