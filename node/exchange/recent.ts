/** A small least-recently-used map: the exchange's caches stay bounded however many studies a node serves. */
export class Recent<K, V> {
  private readonly items = new Map<K, V>()
  private readonly limit: number
  constructor(limit: number) {
    this.limit = limit
  }

  get(key: K): V | undefined {
    const value = this.items.get(key)
    if (value !== undefined) {
      this.items.delete(key)
      this.items.set(key, value)
    }
    return value
  }

  set(key: K, value: V): void {
    this.items.delete(key)
    this.items.set(key, value)
    if (this.items.size > this.limit) this.items.delete(this.items.keys().next().value as K)
  }

  delete(key: K): void {
    this.items.delete(key)
  }
}
