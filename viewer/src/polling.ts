/** A view's polling of its node: `refresh` now and every `ms` after, until the returned stop is called. */
export function pollEvery(ms: number, refresh: () => Promise<void>): () => void {
  void refresh()
  const timer = setInterval(() => {
    void refresh()
  }, ms)
  return () => clearInterval(timer)
}
