/**
 * The members this node reaches only through a relay (`GET /api/peers`), for a small mark beside a member's
 * name: a relayed link carries studies as well as a direct one, but slower, and within the relay's limits.
 */
import type { ConnectedMember } from '../../protocol/api/peers.ts'
import { json } from './api.ts'
import { h } from './dom.ts'

export class RelayedMembers {
  private relayed = new Map<string, ConnectedMember>()

  /** Asks the node again; on failure keeps what it knew. */
  async refresh(): Promise<void> {
    try {
      const peers = await json<ConnectedMember[]>('/api/peers', { background: true })
      this.relayed = new Map(peers.filter(p => p.link === 'relayed').map(p => [p.peerId, p]))
    } catch {}
  }

  /** "via relay" beside a member reached only through a relay, with which relay and since when; else nothing. */
  mark(peerId: string | null): HTMLElement | null {
    const peer = peerId === null ? undefined : this.relayed.get(peerId)
    if (peer === undefined) return null
    const relay = peer.relay?.name ?? peer.relay?.peerId ?? 'a member relay'
    return h('span', { class: 'via-relay', title: `reached only through ${relay} since ${peer.since}` }, 'via relay')
  }
}
