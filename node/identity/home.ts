/**
 * The layout of a node's HOME directory. Every path a node reads or writes is named here, so a reader can
 * see at a glance what a node keeps and which files are secret.
 */
import { join } from 'node:path'

export interface HomePaths {
  home: string
  /** libp2p Ed25519 private key (protobuf), 0600: the node's peer id */
  identityKey: string
  /** X25519 private key (PKCS#8 DER), 0600: opens study keys wrapped for this member */
  wrapKey: string
  /** name, role, subspecialties, peer id, public keys */
  profile: string
  /** what `init` writes for the consortium administrator */
  joinRequest: string
  certificate: string
  consortium: string
  /** bearer token for the HTTP API, 0600 */
  apiToken: string
  /** AES-256 key sealing the archive at rest, 0600 */
  storageKey: string
  /** sealed instance chunks */
  chunks: string
  /** the hash-chained audit trail, 0600 */
  audit: string
  /** LevelDB: revocations, known members, the sealed archive index, exchange state, the Yjs documents */
  database: string
  /** structured log (JSON lines) */
  log: string
  /** revocations handed over while the node was stopped; taken in at the next start */
  pendingRevocations: string
  /** written while the node runs: its pid and HTTP address, so other commands can find it */
  running: string
  /** a site's routing rules and due times (optional; defaults in node/worklist/routing.ts) */
  routing: string
}

export function homePaths(home: string): HomePaths {
  return {
    home,
    identityKey: join(home, 'identity.key'),
    wrapKey: join(home, 'wrap.key'),
    profile: join(home, 'profile.json'),
    joinRequest: join(home, 'join-request.json'),
    certificate: join(home, 'certificate.json'),
    consortium: join(home, 'consortium.json'),
    apiToken: join(home, 'api-token'),
    storageKey: join(home, 'storage.key'),
    chunks: join(home, 'chunks'),
    audit: join(home, 'audit.log'),
    database: join(home, 'db'),
    log: join(home, 'node.log'),
    pendingRevocations: join(home, 'pending-revocations.json'),
    running: join(home, 'running.json'),
    routing: join(home, 'routing.json')
  }
}
