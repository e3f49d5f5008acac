/** `radmesh init` and `radmesh join`: a member's own set-up. */
import { homePaths } from '../identity/home.ts'
import { initHome, joinHome, readCertificateFile, readConsortiumFile } from '../identity/member.ts'
import { ensureApiToken } from '../node-options.ts'
import { list, parse, required, role } from './args.ts'

const INIT = 'radmesh init --home HOME --name NAME --role site|radiologist [--subspecialty neuro,msk,…]'
const JOIN = 'radmesh join --home HOME --cert CERT --consortium DIR/consortium.json'

export async function initCommand(argv: string[], print: (line: string) => void): Promise<void> {
  const { values } = parse(
    argv,
    {
      home: { type: 'string' },
      name: { type: 'string' },
      role: { type: 'string' },
      subspecialty: { type: 'string', multiple: true }
    },
    INIT
  )
  const home = required(values, 'home', INIT)
  const subspecialties = list(values, 'subspecialty')
    .flatMap(s => s.split(','))
    .map(s => s.trim())
    .filter(s => s !== '')
  const request = await initHome(home, {
    name: required(values, 'name', INIT),
    role: role(required(values, 'role', INIT)),
    subspecialties
  })
  await ensureApiToken(homePaths(home))
  print(`initialised ${home}: peer ${request.peerId}`)
  print(`join request: ${homePaths(home).joinRequest}  (send it to the consortium administrator)`)
}

export async function joinCommand(argv: string[], print: (line: string) => void): Promise<void> {
  const { values } = parse(
    argv,
    { home: { type: 'string' }, cert: { type: 'string' }, consortium: { type: 'string' } },
    JOIN
  )
  const home = required(values, 'home', JOIN)
  const certificate = await readCertificateFile(required(values, 'cert', JOIN))
  const consortium = await readConsortiumFile(required(values, 'consortium', JOIN))
  await joinHome(home, certificate, consortium)
  print(
    `joined consortium "${consortium.name}" as ${certificate.name} (${certificate.role}) until ${certificate.expiresAt}`
  )
}
