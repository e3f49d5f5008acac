/**
 * Every resource limit of the libp2p host, in one place, with the reason for each.
 */
export const P2P_LIMITS = {
  /** A consortium is tens to a few hundred members; more connections than this is an attack or a bug. */
  maxConnections: 256,
  /** Strangers still in the handshake: bounded so a flood of half-open connections cannot starve members. */
  maxIncomingPendingConnections: 32,
  /** Noise + member handshake must finish in this time, or the connection is dropped. */
  inboundUpgradeTimeout: 15_000,
  /** Yamux: streams a peer may open at once on one connection (each protocol has its own, smaller cap). */
  maxInboundStreams: 256,
  maxOutboundStreams: 256,
  /**
   * Yamux may grow a stream's window to 16 MiB for bulk transfer on long links, as a stream moves at most a
   * window per round trip. It is yamux's own default, named here so that the node and the transfer
   * benchmark's bare pipe use the same; raising `initialStreamWindowSize` instead breaks peers that did not
   * raise it too.
   */
  maxStreamWindowSize: 16 * 1024 * 1024,
  /**
   * Liveness: every link is pinged this often (libp2p's connection monitor), which also keeps NAT mappings
   * open. Yamux's own keepalive pings too, but never closes a link whose pings go unanswered, so a link that
   * died silently (the far end's address changed, a NAT forgot its mapping) stayed open until TCP gave up,
   * about 15 minutes later.
   */
  livenessIntervalMs: 10_000,
  /**
   * A link whose ping is not answered within this is aborted and redialled: a dead link is noticed 10-30 s
   * after it died. Well above a ping's round trip on a loaded machine (tens of ms), so a busy link is not cut.
   */
  livenessTimeoutMs: 20_000
} as const

/** Redial: first retry after 1 s, doubling to at most 30 s, with ±20 % jitter so restarts do not stampede. */
export const REDIAL_POLICY = {
  initialDelayMs: 1_000,
  /** a dial that has not connected by then is given up, so a stuck dial never stops the redialling */
  dialTimeoutMs: 10_000,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.2
} as const
