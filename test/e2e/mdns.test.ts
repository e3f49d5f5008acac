/**
 * Members on one LAN find each other by mDNS, with no --peer. The LAN is a network namespace of this test's
 * own with only loopback (multicast enabled), so no packet leaves the machine.
 * Needs root and iproute2 (`ip netns`), as CI has; it fails, never skips, where they are missing.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { test } from 'uvu'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { CLI } from '../../scripts/lib/cli.ts'
import { logOf } from '../../scripts/lib/node-process.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const namespace = `radmesh-mdns-${process.pid}`
const children: ChildProcess[] = []
const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

test.before(() => {
  try {
    ip('netns', 'add', namespace)
    ip('netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up', 'multicast', 'on')
    ip('netns', 'exec', namespace, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lo')
  } catch (error) {
    throw new Error(`the mDNS test needs root and iproute2 to make a network namespace: ${(error as Error).message}`)
  }
})

test.after(() => {
  for (const child of children) child.kill('SIGKILL')
  try {
    ip('netns', 'del', namespace)
  } catch {}
})

test('two members on one LAN find each other by mDNS and connect', async () => {
  const consortium = await createScratchConsortium()
  const homes = [await consortium.member('LAN Site', 'site'), await consortium.member('LAN Reader', 'radiologist')]
  for (const [i, home] of homes.entries()) {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        namespace,
        process.execPath,
        CLI,
        'start',
        '--home',
        home,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--http',
        `127.0.0.1:${7480 + i}`
      ],
      { stdio: 'ignore' }
    )
    children.push(child)
  }
  const [siteHome, readerHome] = homes as [string, string]
  const peerIdOf = async (home: string): Promise<string> =>
    await waitFor(
      'the node to start',
      async () => (await logOf(home)).find(l => l['event'] === 'node-started')?.['peerId'] as string | undefined,
      20_000
    )
  const [sitePeer, readerPeer] = [await peerIdOf(siteHome), await peerIdOf(readerHome)]
  await waitFor(
    'each to connect to the other',
    async () =>
      (await logOf(siteHome)).some(l => l['event'] === 'member-connected' && l['peer'] === readerPeer) &&
      (await logOf(readerHome)).some(l => l['event'] === 'member-connected' && l['peer'] === sitePeer),
    20_000
  )
})

test.run()
