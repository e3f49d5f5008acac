/** `radmesh start`: runs the node until SIGINT/SIGTERM. */
import { createNode } from '../node.ts'
import { UsageError } from '../errors.ts'
import { list, optional, parse, required } from './args.ts'

const START = 'radmesh start --home HOME [--listen MULTIADDR]… [--peer MULTIADDR]… [--http HOST:PORT] [--dicom PORT] [--ae TITLE] [--no-mdns]'

export async function startCommand (argv: string[], print: (line: string) => void): Promise<void> {
  const { values } = parse(argv, {
    home: { type: 'string' },
    listen: { type: 'string', multiple: true },
    peer: { type: 'string', multiple: true },
    http: { type: 'string' },
    dicom: { type: 'string' },
    ae: { type: 'string' },
    'no-mdns': { type: 'boolean' },
    'session-idle': { type: 'string' }
  }, START)
  if (optional(values, 'dicom') !== undefined || optional(values, 'ae') !== undefined) {
    throw new UsageError('--dicom and --ae arrive with the archive (DICOM C-STORE SCP); this version does not listen for DICOM yet')
  }
  const listen = list(values, 'listen')
  const http = optional(values, 'http')
  const node = await createNode({
    home: required(values, 'home', START),
    ...(listen.length > 0 ? { listen } : {}),
    peers: list(values, 'peer'),
    ...(http === undefined ? {} : { http }),
    mdns: values['no-mdns'] !== true
  })
  print(`radmesh node "${node.certificate.name}" (${node.certificate.role}) peer ${node.peerId}`)
  for (const addr of node.listenAddrs()) print(`listening: ${addr}`)
  print(`http: ${node.httpUrl}`)
  print(`viewer: ${node.signInUrl()}`)

  await new Promise<void>(resolve => {
    const shutdown = (signal: string): void => {
      node.log.info({ event: 'node-stopping', signal }, 'stopping')
      void node.stop().finally(resolve)
    }
    process.once('SIGINT', () => { shutdown('SIGINT') })
    process.once('SIGTERM', () => { shutdown('SIGTERM') })
  })
}
