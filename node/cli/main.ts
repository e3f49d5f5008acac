/**
 * `radmesh`: the command line. Every failure prints one line on stderr and exits non-zero
 * (the exit codes are in `node/errors.ts`).
 */
import { isRadmeshError, UsageError } from '../errors.ts'

const HELP = `radmesh: peer-to-peer teleradiology reading network

  radmesh consortium create --dir DIR --name NAME
  radmesh init --home HOME --name NAME --role site|radiologist [--subspecialty neuro,msk,…]
  radmesh consortium admit --dir DIR --request FILE --out CERT   (or --home HOME on one machine)
  radmesh consortium revoke --dir DIR --peer PEERID [--home HOME]
  radmesh join --home HOME --cert CERT --consortium DIR/consortium.json
  radmesh start --home HOME [--listen MULTIADDR]… [--announce MULTIADDR]… [--peer MULTIADDR]…
                [--http HOST:PORT] [--dicom PORT] [--ae TITLE] [--stable-after 30s] [--session-idle 15m]
                [--resync 5s] [--cors ORIGIN]… [--preallocate MIB] [--no-mdns]
  radmesh status --home HOME
  radmesh viewer --home HOME                       (a new one-time sign-in URL for the viewer)
  radmesh import --home HOME PATH…                 (files or folders of DICOM Part 10 files)
  radmesh share --home HOME STUDYUID --to PEERID…   (make a study readable by these members)
                [--deidentify [--retain-dates modified|full] [--retain-patient-characteristics] [--burned-in-clean]]
  radmesh fetch --home HOME STUDYUID               (fetch a study now, with a progress bar)
  radmesh audit --home HOME [--verify]
  radmesh --version`

/** A command resolves to its exit code (0 when it returns nothing) or throws a RadmeshError. */
type Command = (argv: string[], print: (line: string) => void) => Promise<number> | Promise<void>
/**
 * Each command's module is loaded when it runs: `radmesh init` or `status` need not load the node's whole code
 * (libp2p, the archive, the HTTP server), which `start` does: about 1 s of a site's 1.8 s start (`npm run bench --
 * start`).
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  consortium: async () => (await import('./consortium.ts')).consortiumCommand,
  init: async () => (await import('./member.ts')).initCommand,
  join: async () => (await import('./member.ts')).joinCommand,
  start: async () => (await import('./start.ts')).startCommand,
  status: async () => (await import('./status.ts')).statusCommand,
  viewer: async () => (await import('./status.ts')).viewerCommand,
  import: async () => (await import('./archive.ts')).importCommand,
  audit: async () => (await import('./archive.ts')).auditCommand,
  share: async () => (await import('./exchange.ts')).shareCommand,
  fetch: async () => (await import('./exchange.ts')).fetchCommand
}

export async function main(argv: string[]): Promise<number> {
  const print = (line: string): void => {
    process.stdout.write(`${line}\n`)
  }
  const [name, ...rest] = argv
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      print(HELP)
      return name === undefined ? 2 : 0
    }
    if (name === '--version' || name === 'version') {
      const { readFile } = await import('node:fs/promises')
      const manifest = await readFile(new URL('../../package.json', import.meta.url), 'utf8')
      print(`radmesh ${(JSON.parse(manifest) as { version: string }).version} (Node.js ${process.version})`)
      return 0
    }
    const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
    if (load === undefined) throw new UsageError(`unknown command "${name}"; run "radmesh help"`)
    return (await (await load())(rest, print)) ?? 0
  } catch (error) {
    if (isRadmeshError(error)) {
      process.stderr.write(`radmesh: ${error.message}\n`)
      return error.exitCode
    }
    // One line, as promised above: some libraries put a stack or a list of causes in the message itself.
    const message = ((error as Error).message ?? String(error)).split('\n')[0]?.trim()
    process.stderr.write(`radmesh: internal error: ${message} (please report it with HOME/node.log)\n`)
    if (process.env['RADMESH_DEBUG'] !== undefined) process.stderr.write(`${(error as Error).stack}\n`)
    return 70
  }
}

process.exitCode = await main(process.argv.slice(2))
