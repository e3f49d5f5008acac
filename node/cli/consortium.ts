/** `radmesh consortium create | admit | revoke`: the administrator's commands. */
import { promises as fs } from 'node:fs'
import { asPeerIdString } from '../../protocol/ids.ts'
import { UsageError } from '../errors.ts'
import { toJsonText, writeFileAtomic } from '../files.ts'
import { homePaths } from '../identity/home.ts'
import { joinHome, readJoinRequest } from '../identity/member.ts'
import {
  admit,
  createConsortium,
  DEFAULT_CERTIFICATE_LIFETIME_MS,
  openConsortium,
  revoke
} from '../membership/consortium.ts'
import { duration, optional, parse, required } from './args.ts'
import { connectToNode } from './client.ts'
import { NodeNotRunningError } from '../errors.ts'

const CREATE = 'radmesh consortium create --dir DIR --name NAME'
const ADMIT = 'radmesh consortium admit --dir DIR (--request FILE --out CERT | --home HOME) [--valid-for 365d]'
const REVOKE = 'radmesh consortium revoke --dir DIR --peer PEERID [--home HOME] [--reason TEXT]'

export async function consortiumCommand(argv: string[], print: (line: string) => void): Promise<void> {
  const [sub, ...rest] = argv
  switch (sub) {
    case 'create': {
      const { values } = parse(rest, { dir: { type: 'string' }, name: { type: 'string' } }, CREATE)
      const dir = required(values, 'dir', CREATE)
      const info = await createConsortium(dir, required(values, 'name', CREATE))
      print(`consortium "${info.name}" created: id ${info.id}`)
      print(`public:  ${dir}/consortium.json  (give it to every member)`)
      print(`secret:  ${dir}/root.key  (0600; keep it offline, it decides who is a member)`)
      return
    }
    case 'admit': {
      const { values } = parse(
        rest,
        {
          dir: { type: 'string' },
          request: { type: 'string' },
          out: { type: 'string' },
          home: { type: 'string' },
          'valid-for': { type: 'string' }
        },
        ADMIT
      )
      const consortium = await openConsortium(required(values, 'dir', ADMIT))
      const home = optional(values, 'home')
      const requestPath = optional(values, 'request') ?? (home === undefined ? undefined : homePaths(home).joinRequest)
      if (requestPath === undefined) throw new UsageError(`give --request FILE or --home HOME; usage: ${ADMIT}`)
      const out = optional(values, 'out')
      if (home === undefined && out === undefined)
        throw new UsageError(`--out CERT is required with --request; usage: ${ADMIT}`)
      const validFor = optional(values, 'valid-for')
      const request = await readJoinRequest(requestPath)
      const certificate = await admit(consortium, request, {
        lifetimeMs: validFor === undefined ? DEFAULT_CERTIFICATE_LIFETIME_MS : duration(validFor, '--valid-for')
      })
      if (out !== undefined) await writeFileAtomic(out, toJsonText(certificate))
      if (home !== undefined) await joinHome(home, certificate, consortium.info)
      print(`admitted ${certificate.name} (${certificate.role}) ${certificate.peerId} until ${certificate.expiresAt}`)
      if (out !== undefined) print(`certificate: ${out}`)
      if (home !== undefined) print(`installed in ${home}`)
      return
    }
    case 'revoke': {
      const { values } = parse(
        rest,
        { dir: { type: 'string' }, peer: { type: 'string' }, home: { type: 'string' }, reason: { type: 'string' } },
        REVOKE
      )
      const consortium = await openConsortium(required(values, 'dir', REVOKE))
      const peer = required(values, 'peer', REVOKE)
      if (!/^[1-9A-HJ-NP-Za-km-z]{40,128}$/.test(peer))
        throw new UsageError(`--peer ${peer} is not a libp2p peer id (base58, like 12D3KooW…)`)
      const revocation = await revoke(consortium, asPeerIdString(peer), optional(values, 'reason'))
      print(`revoked ${peer} at ${revocation.revokedAt}; recorded in ${consortium.dir}/issued/revocation-${peer}.json`)
      const home = optional(values, 'home')
      if (home !== undefined) {
        try {
          const client = await connectToNode(home)
          await client.request('POST', '/api/membership/revocations', [revocation])
          print(`handed to the node on ${home}, which spreads it to every member it reaches`)
        } catch (error) {
          if (!(error instanceof NodeNotRunningError)) throw error
          const pending = homePaths(home).pendingRevocations
          const earlier = await fs.readFile(pending, 'utf8').then(
            text => JSON.parse(text) as unknown[],
            () => []
          )
          await writeFileAtomic(pending, toJsonText([...earlier, revocation]))
          print(`the node on ${home} is not running; it will take the revocation from ${pending} when it starts`)
        }
      }
      return
    }
    default:
      throw new UsageError(`radmesh consortium ${sub ?? ''}: use create, admit or revoke`)
  }
}
