/**
 * Every CLI failure prints exactly one line on stderr, starting "radmesh: ", and exits non-zero.
 */
import { once } from 'node:events'
import { promises as fs } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type CliResult, radmesh, radmeshOk } from '../../scripts/lib/cli.ts'
import { startNode } from '../../scripts/lib/node-process.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

let consortium: ScratchConsortium
let home: string

function failsWithOneLine(result: CliResult, pattern: RegExp, exitCode?: number): void {
  assert.ok(result.code !== 0, `exit code ${result.code}; stdout: ${result.stdout}`)
  if (exitCode !== undefined) assert.is(result.code, exitCode)
  const lines = result.stderr.trimEnd().split('\n')
  assert.is(lines.length, 1, `stderr has ${lines.length} lines: ${result.stderr}`)
  assert.match(lines[0] ?? '', /^radmesh: /)
  assert.match(lines[0] ?? '', pattern)
}

async function quickStart(args: string[]): Promise<CliResult> {
  return await radmesh([
    'start',
    '--no-mdns',
    '--http',
    `127.0.0.1:${await freePort()}`,
    '--listen',
    `/ip4/127.0.0.1/tcp/${await freePort()}`,
    ...args
  ])
}

test.before(async () => {
  consortium = await createScratchConsortium()
  home = await consortium.member('Site', 'site')
})

test('start with a HOME that does not exist', async () => {
  failsWithOneLine(await quickStart(['--home', join(consortium.root, 'nowhere')]), /does not exist.*radmesh init/)
})

test('start with a HOME that was initialised but never joined', async () => {
  const fresh = join(consortium.root, 'fresh')
  await radmeshOk(['init', '--home', fresh, '--name', 'Fresh', '--role', 'radiologist'])
  failsWithOneLine(await quickStart(['--home', fresh]), /no certificate yet.*join-request\.json/)
})

test('start with a corrupt identity key, or a damaged certificate', async () => {
  const broken = await consortium.member('Broken', 'radiologist')
  await fs.writeFile(join(broken, 'certificate.json'), '{"v":1,')
  failsWithOneLine(await quickStart(['--home', broken]), /certificate.*damaged/)
  await fs.writeFile(join(broken, 'identity.key'), 'not a key', { mode: 0o600 })
  failsWithOneLine(await quickStart(['--home', broken]), /identity key.*damaged/)
})

test('start refuses an identity key readable by others', async () => {
  const loose = await consortium.member('Loose', 'radiologist')
  await fs.chmod(join(loose, 'identity.key'), 0o644)
  failsWithOneLine(await quickStart(['--home', loose]), /readable by others.*chmod 600/)
})

test('join with a certificate of another consortium', async () => {
  const other = await createScratchConsortium('Other')
  const fresh = join(consortium.root, 'joiner')
  await radmeshOk(['init', '--home', fresh, '--name', 'Joiner', '--role', 'radiologist'])
  const cert = join(consortium.root, 'joiner.cert')
  await radmeshOk([
    'consortium',
    'admit',
    '--dir',
    other.dir,
    '--request',
    join(fresh, 'join-request.json'),
    '--out',
    cert
  ])
  failsWithOneLine(
    await radmesh(['join', '--home', fresh, '--cert', cert, '--consortium', join(consortium.dir, 'consortium.json')]),
    /certificate of consortium/
  )
  await fs.access(join(fresh, 'certificate.json')).then(
    () => assert.unreachable('a refused certificate was installed'),
    () => {}
  )
})

test('join with a certificate made for another member', async () => {
  const fresh = join(consortium.root, 'joiner2')
  await radmeshOk(['init', '--home', fresh, '--name', 'Joiner 2', '--role', 'radiologist'])
  failsWithOneLine(
    await radmesh([
      'join',
      '--home',
      fresh,
      '--cert',
      join(home, 'certificate.json'),
      '--consortium',
      join(consortium.dir, 'consortium.json')
    ]),
    /certificate is for peer/
  )
})

test('start with an expired certificate', async () => {
  const lapsed = await consortium.member('Lapsed', 'radiologist', ['--valid-for', '1s'])
  await new Promise(resolve => setTimeout(resolve, 1_100))
  failsWithOneLine(await quickStart(['--home', lapsed]), /certificate expired at/)
})

test('start on a port in use', async () => {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  try {
    failsWithOneLine(
      await radmesh([
        'start',
        '--home',
        home,
        '--no-mdns',
        '--http',
        `127.0.0.1:${await freePort()}`,
        '--listen',
        `/ip4/127.0.0.1/tcp/${port}`
      ]),
      /address already in use/
    )
    failsWithOneLine(
      await radmesh([
        'start',
        '--home',
        home,
        '--no-mdns',
        '--http',
        `127.0.0.1:${port}`,
        '--listen',
        `/ip4/127.0.0.1/tcp/${await freePort()}`
      ]),
      /HTTP.*address already in use/
    )
  } finally {
    server.close()
  }
})

test('start on a HOME another node is running on', async () => {
  const running = await startNode(home)
  try {
    failsWithOneLine(await quickStart(['--home', home]), /another radmesh node is running on this HOME; stop it first/)
  } finally {
    await running.stop()
  }
})

test('start on an address this machine does not have', async () => {
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): assigned to no machine.
  const listen = await radmesh(['start', '--home', home, '--no-mdns', '--listen', '/ip4/192.0.2.1/tcp/0'])
  failsWithOneLine(listen, /cannot listen on \/ip4\/192\.0\.2\.1\/tcp\/0: this machine has no such address/, 2)
  failsWithOneLine(await quickStart(['--home', home, '--http', '192.0.2.1:0']), /cannot listen on 192\.0\.2\.1/, 2)
})

test('malformed multiaddrs for --listen and --peer', async () => {
  failsWithOneLine(
    await radmesh(['start', '--home', home, '--listen', '127.0.0.1:7400']),
    /--listen 127\.0\.0\.1:7400 is not a multiaddr/,
    2
  )
  failsWithOneLine(
    await radmesh(['start', '--home', home, '--peer', '/ip4/999.1.1.1/tcp/1']),
    /--peer .* is not a multiaddr/,
    2
  )
})

test('a --preallocate that is not a number of MiB from 0 to 4096', async () => {
  for (const bad of ['-1', 'lots', '1.5', '5000'])
    failsWithOneLine(
      await radmesh(['start', '--home', home, `--preallocate=${bad}`]),
      new RegExp(`--preallocate ${bad.replace('.', '\\.')}: give the MiB of pack space`),
      2
    )
})

test('a --resync that is not a duration from 1s to 1h', async () => {
  for (const [bad, reason] of [
    ['soon', 'write a number and a unit'],
    ['0s', 'must be more than zero'],
    ['2h', 'at most 1h']
  ] as const) {
    failsWithOneLine(await radmesh(['start', '--home', home, `--resync=${bad}`]), new RegExp(`--resync.*${reason}`), 2)
  }
})

test('malformed --cors origin and --session-idle', async () => {
  failsWithOneLine(
    await radmesh(['start', '--home', home, '--cors', 'localhost:3000']),
    /--cors localhost:3000: give an origin, e\.g\. http:\/\/localhost:3000/,
    2
  )
  failsWithOneLine(
    await radmesh(['start', '--home', home, '--cors', 'http://ohif.example/viewer']),
    /--cors .*: give an origin/,
    2
  )
  failsWithOneLine(
    await radmesh(['start', '--home', home, '--session-idle', 'soon']),
    /--session-idle soon: write a number and a unit/,
    2
  )
})

test('usage errors: unknown command, unknown flag, missing flag, bad role', async () => {
  failsWithOneLine(await radmesh(['frobnicate']), /unknown command/, 2)
  failsWithOneLine(await radmesh(['init', '--home', '/tmp/x', '--colour', 'red']), /Unknown option '--colour'/, 2)
  failsWithOneLine(await radmesh(['consortium', 'create', '--name', 'X']), /--dir is required/, 2)
  failsWithOneLine(
    await radmesh(['init', '--home', join(consortium.root, 'r'), '--name', 'R', '--role', 'admin']),
    /site.*radiologist/,
    2
  )
})

test('init never replaces an existing identity; create never replaces a consortium', async () => {
  failsWithOneLine(
    await radmesh(['init', '--home', home, '--name', 'Again', '--role', 'site']),
    /already has an identity/
  )
  failsWithOneLine(
    await radmesh(['consortium', 'create', '--dir', consortium.dir, '--name', 'Again']),
    /already holds a consortium/
  )
})

test('admit refuses a peer id that was revoked', async () => {
  const again = await consortium.member('Dr Again', 'radiologist')
  const peerId = JSON.parse(await fs.readFile(join(again, 'join-request.json'), 'utf8')).peerId as string
  await radmeshOk(['consortium', 'revoke', '--dir', consortium.dir, '--peer', peerId])
  failsWithOneLine(
    await radmesh([
      'consortium',
      'admit',
      '--dir',
      consortium.dir,
      '--request',
      join(again, 'join-request.json'),
      '--out',
      join(consortium.root, 'again.cert')
    ]),
    /was revoked.*new identity/
  )
})

test('commands that need the node say when it is not running', async () => {
  failsWithOneLine(await radmesh(['status', '--home', home]), /no radmesh node is running/)
})

test('revoke without the root key', async () => {
  const dir = await tempDir()
  await fs.copyFile(join(consortium.dir, 'consortium.json'), join(dir, 'consortium.json'))
  failsWithOneLine(
    await radmesh([
      'consortium',
      'revoke',
      '--dir',
      dir,
      '--peer',
      '12D3KooWCVqUUU2Q7P7W871U4ipow2dZHe7rMC9i3V2s5YFd5QTX'
    ]),
    /no root key/
  )
})

test.run()
