/**
 * Waiting for a condition: a node to answer, a case to reach a worklist, a file to reach its size.
 */

/**
 * Calls `probe` every `intervalMs` until it returns something other than undefined or false, and resolves
 * to that. Throws after `timeoutMs`, naming `what` and the last error the probe threw.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
  intervalMs = 100
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      lastError = error
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
  const last = lastError === undefined ? '' : ` (last error: ${(lastError as Error).message})`
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`)
}
