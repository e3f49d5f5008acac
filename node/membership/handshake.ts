/**
 * The member handshake as a libp2p connection encrypter: Noise, then certificates (see
 * `protocol/membership/handshake.ts`). A peer that fails it never reaches the stream muxer.
 */
import { noise } from '@chainsafe/libp2p-noise'
import type {
  ComponentLogger,
  ConnectionEncrypter,
  MessageStream,
  PrivateKey,
  SecureConnectionOptions,
  SecuredConnection,
  Upgrader
} from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import {
  decodeHello,
  decodeVerdict,
  encodeHello,
  encodeVerdict,
  HANDSHAKE_TIMEOUT_MS,
  MAX_HELLO_BYTES,
  MEMBER_HANDSHAKE_PROTOCOL,
  type MemberCertificate,
  type Verdict
} from '../../protocol/membership/index.ts'
import { noiseCrypto } from './noise-crypto.ts'
import type { PeerPenalties } from '../p2p/penalties.ts'
import type { MembershipRegistry } from './registry.ts'

/** Thrown (inside libp2p's upgrade) when either side refuses the other. */
export class MembershipRefusedError extends Error {
  static override readonly name = 'MembershipRefusedError'
  readonly code = 'RADMESH_MEMBERSHIP_REFUSED'
  constructor(message: string) {
    super(message)
    this.name = 'MembershipRefusedError'
  }
}

export interface MemberHandshakeComponents {
  privateKey: PrivateKey
  logger: ComponentLogger
  upgrader: Upgrader
}

type Direction = 'inbound' | 'outbound'

const REFUSAL_LINGER_MS = 1000

class MemberHandshake implements ConnectionEncrypter {
  readonly protocol = MEMBER_HANDSHAKE_PROTOCOL
  private readonly noise: ConnectionEncrypter
  private readonly registry: MembershipRegistry
  private readonly penalties: Pick<PeerPenalties, 'isBanned'>
  private readonly log: Logger

  constructor(
    noiseEncrypter: ConnectionEncrypter,
    registry: MembershipRegistry,
    penalties: Pick<PeerPenalties, 'isBanned'>,
    log: Logger
  ) {
    this.noise = noiseEncrypter
    this.registry = registry
    this.penalties = penalties
    this.log = log
  }

  async secureInbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    const secured = await this.noise.secureInbound(connection, options)
    await this.exchangeCertificates(secured, connection, 'inbound', options)
    return secured
  }

  async secureOutbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    const secured = await this.noise.secureOutbound(connection, options)
    await this.exchangeCertificates(secured, connection, 'outbound', options)
    return secured
  }

  private async exchangeCertificates(
    secured: SecuredConnection,
    raw: MessageStream,
    direction: Direction,
    options?: SecureConnectionOptions
  ): Promise<void> {
    const remotePeer = secured.remotePeer.toString()
    const remoteAddr = (raw as { remoteAddr?: { toString(): string } }).remoteAddr?.toString()
    const signals = [
      AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS),
      ...(options?.signal === undefined ? [] : [options.signal])
    ]
    const signal = AbortSignal.any(signals)
    const framed = lpStream(secured.connection, { maxDataLength: MAX_HELLO_BYTES })

    await framed.write(encodeHello({ type: 'hello', certificate: this.registry.self }), { signal })
    let ours: Verdict
    let certificate: MemberCertificate | undefined
    try {
      certificate = decodeHello((await framed.read({ signal })).subarray()).certificate
      const check = this.registry.check(certificate, remotePeer)
      ours = !check.ok
        ? { type: 'verdict', accepted: false, code: check.code, reason: check.reason }
        : this.penalties.isBanned(remotePeer)
          ? {
              type: 'verdict',
              accepted: false,
              code: 'banned',
              reason: 'refused for a cool-down after sending bad data'
            }
          : { type: 'verdict', accepted: true }
    } catch (error) {
      if (signal.aborted) throw error
      ours = { type: 'verdict', accepted: false, code: 'malformed-hello', reason: (error as Error).message }
    }
    await framed.write(encodeVerdict(ours), { signal })

    if (!ours.accepted) {
      this.log.warn(
        { event: 'member-refused', direction, remotePeer, remoteAddr, code: ours.code, reason: ours.reason },
        `refused ${remotePeer}: ${ours.reason}`
      )
      // Wait (briefly) for the peer's verdict: by then ours has left the socket, so the refused node
      // can tell its operator why, instead of seeing a bare reset.
      await framed.read({ signal: AbortSignal.any([signal, AbortSignal.timeout(REFUSAL_LINGER_MS)]) }).catch(() => {})
      framed.unwrap()
      throw new MembershipRefusedError(`refused ${remotePeer}: ${ours.code}: ${ours.reason}`)
    }
    const theirs = decodeVerdict((await framed.read({ signal })).subarray())
    framed.unwrap()
    if (!theirs.accepted) {
      this.log.warn(
        { event: 'refused-by-peer', direction, remotePeer, remoteAddr, code: theirs.code, reason: theirs.reason },
        `${remotePeer} refused this node: ${theirs.reason}`
      )
      throw new MembershipRefusedError(`${remotePeer} refused this node: ${theirs.code}: ${theirs.reason}`)
    }
    if (certificate !== undefined) await this.registry.recordVerified(certificate)
  }
}

/**
 * Answers peers that offer only plain `/noise`: authenticates them (so the refusal names a peer id) and
 * refuses them. Without it they would fail protocol negotiation and leave no trace in the log.
 */
class PlainNoiseRefusal implements ConnectionEncrypter {
  readonly protocol = '/noise'
  private readonly noise: ConnectionEncrypter
  private readonly log: Logger

  constructor(noiseEncrypter: ConnectionEncrypter, log: Logger) {
    this.noise = noiseEncrypter
    this.log = log
  }

  async secureInbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.refuse(await this.noise.secureInbound(connection, options), connection, 'inbound')
  }

  async secureOutbound(connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection> {
    return this.refuse(await this.noise.secureOutbound(connection, options), connection, 'outbound')
  }

  private refuse(secured: SecuredConnection, raw: MessageStream, direction: Direction): never {
    const remotePeer = secured.remotePeer.toString()
    const remoteAddr = (raw as { remoteAddr?: { toString(): string } }).remoteAddr?.toString()
    const reason = 'speaks plain Noise without the radmesh member handshake: no consortium certificate'
    this.log.warn(
      { event: 'member-refused', direction, remotePeer, remoteAddr, code: 'no-certificate', reason },
      `refused ${remotePeer}: ${reason}`
    )
    throw new MembershipRefusedError(`refused ${remotePeer}: no-certificate: ${reason}`)
  }
}

type NoiseComponents = Parameters<ReturnType<typeof noise>>[0]

/**
 * The factories libp2p takes in `connectionEncrypters`: the member handshake first, the refusal of plain Noise
 * after.
 */
export function memberHandshake(
  registry: MembershipRegistry,
  penalties: Pick<PeerPenalties, 'isBanned'>,
  log: Logger
): Array<(components: MemberHandshakeComponents) => ConnectionEncrypter> {
  return [
    components =>
      new MemberHandshake(noise({ crypto: noiseCrypto })(components as NoiseComponents), registry, penalties, log),
    components => new PlainNoiseRefusal(noise({ crypto: noiseCrypto })(components as NoiseComponents), log)
  ]
}
