/**
 * Real NATs in network namespaces (`ip netns`, veth pairs, nftables masquerade), for the relay tests. Needs
 * root, `ip` and `nft` (scripts/system-deps.ts installs nftables). The topology:
 *
 *                         WAN 10.99.0.0/24 (bridge in namespace "wan"; the relay member is 10.99.0.1)
 *              10.99.0.2 /                          \ 10.99.0.3      (another WAN prefix: TopologyOptions)
 *          "nat-a" masquerade                 "nat-b" masquerade
 *      192.168.1.1 |                                | 192.168.2.1
 *      "site" 192.168.1.2                     "reader" 192.168.2.2
 *
 * A NAT forwards what its LAN opens and drops what the WAN opens, and the WAN has no route to either LAN: the
 * site and the reader cannot dial each other, and both reach the relay. Each namespace that runs a node also
 * has a management link to this (root) namespace, a /30 of a 172.31.B.0/24 no other test process uses, on which
 * its HTTP API and DICOM port listen: the test talks to every node, and the nodes cannot use it to reach each
 * other.
 * `teardown()` deletes every namespace (and with them their links); it runs on exit too, whatever happened.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { childEnv, killChild, ownChild } from './children.ts'
import { CLI } from './cli.ts'
import { waitFor } from './wait.ts'

export interface Namespaces {
  /** namespace names by role */
  ns: Record<'wan' | 'natA' | 'natB' | 'site' | 'reader', string>
  /** addresses on the P2P networks */
  addr: { relay: string; site: string; reader: string }
  /** management addresses (HTTP, DICOM), reachable from this namespace only */
  mgmt: Record<'wan' | 'site' | 'reader', string>
  /**
   * Another namespace `role` on the WAN itself (no NAT: a member with a public address) at `addr` on the WAN
   * bridge, with its own management link; deleted by `teardown()` like the others.
   */
  addWanHost(role: string, addr: string): { ns: string; mgmt: string }
  teardown(): void
}

/**
 * How a NAT maps its LAN's connections. `cone`: Linux's own masquerade, which keeps a connection's source port
 * when it is free, whatever the destination (endpoint-independent mapping: what hole punching needs).
 * `symmetric`: a random port for every new connection (`fully-random`), so the port a third party sees is not
 * the one a peer would see: hole punching cannot work through it.
 */
export type NatKind = 'cone' | 'symmetric'

/** Masquerade what the LAN opens to the WAN; forward nothing the WAN opens. */
const natRules = (kind: NatKind): string => `table ip nat {
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    oifname "wan0" masquerade${kind === 'symmetric' ? ' fully-random' : ' persistent'}
  }
}
table ip filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
  }
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "wan0" ct state new drop
  }
}
`

export interface TopologyOptions {
  /**
   * The WAN's first three octets: 10.99.0 by default. libp2p treats private ranges (10/8, TEST-NETs …) as
   * undialable for a direct-connection upgrade, so a test of one needs a WAN outside them; the namespaces have
   * no route out, so such an address reaches nothing real.
   */
  wan?: string
  /** each NAT's kind, A (the site's) and B (the reader's): `cone` by default */
  natA?: NatKind
  natB?: NatKind
}

const onPath = (command: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0

/** Why namespaces cannot be built here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root'
  if (!onPath('ip')) return 'no ip (iproute2)'
  if (!onPath('nft')) return 'no nft (apt-get install nftables)'
  return undefined
}

const run = (args: string[], input?: string): void => {
  const stdio: Array<'pipe' | 'ignore'> = ['pipe', 'ignore', 'pipe']
  execFileSync(args[0] as string, args.slice(1), { stdio, ...(input === undefined ? {} : { input }) })
}

/**
 * The first three octets of a /24 for this process's management links (172.31.B), one no other address of
 * this (root) namespace is in: test files run side by side, each with its own topology, and two management
 * links on one subnet would send one test's API calls into the other's namespace.
 */
function managementBlock(): string {
  const inUse = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' })
  for (let n = 0; n < 254; n++) {
    const block = `172.31.${1 + ((process.pid + n) % 254)}`
    if (!inUse.includes(` ${block}.`)) return block
  }
  throw new Error('no free 172.31.B.0/24 for the management links: delete the namespaces of earlier runs (ip netns)')
}

/** Builds the topology above under a prefix of this process's own (names stay within 15 characters). */
export function buildNatTopology(options: TopologyOptions = {}): Namespaces {
  const wan = options.wan ?? '10.99.0'
  const p = `rm${process.pid % 100_000}`
  const ns = { wan: `${p}-wan`, natA: `${p}-nata`, natB: `${p}-natb`, site: `${p}-site`, reader: `${p}-rdr` }
  const created: string[] = []
  const teardown = (): void => {
    for (const name of created.splice(0)) spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
  }
  process.once('exit', teardown)
  const inNs = (name: string, ...args: string[]): void => {
    run(['ip', '-n', name, ...args])
  }
  const veth = (a: string, aNs: string, b: string, bNs: string): void => {
    run(['ip', 'link', 'add', a, 'netns', aNs, 'type', 'veth', 'peer', 'name', b, 'netns', bNs])
  }
  try {
    for (const name of Object.values(ns)) {
      run(['ip', 'netns', 'add', name])
      created.push(name)
      inNs(name, 'link', 'set', 'lo', 'up')
    }
    inNs(ns.wan, 'link', 'add', 'br0', 'type', 'bridge')
    inNs(ns.wan, 'addr', 'add', `${wan}.1/24`, 'dev', 'br0')
    inNs(ns.wan, 'link', 'set', 'br0', 'up')
    const nats = [
      [ns.natA, ns.site, `${wan}.2`, '192.168.1', options.natA ?? 'cone'],
      [ns.natB, ns.reader, `${wan}.3`, '192.168.2', options.natB ?? 'cone']
    ] as const
    for (const [i, [nat, lan, wanAddr, subnet, kind]] of nats.entries()) {
      veth(`wan${i}`, ns.wan, 'wan0', nat)
      inNs(ns.wan, 'link', 'set', `wan${i}`, 'master', 'br0', 'up')
      inNs(nat, 'addr', 'add', `${wanAddr}/24`, 'dev', 'wan0')
      inNs(nat, 'link', 'set', 'wan0', 'up')
      veth('lan0', nat, 'eth0', lan)
      inNs(nat, 'addr', 'add', `${subnet}.1/24`, 'dev', 'lan0')
      inNs(nat, 'link', 'set', 'lan0', 'up')
      inNs(lan, 'addr', 'add', `${subnet}.2/24`, 'dev', 'eth0')
      inNs(lan, 'link', 'set', 'eth0', 'up')
      inNs(lan, 'route', 'add', 'default', 'via', `${subnet}.1`)
      run(['ip', 'netns', 'exec', nat, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
      run(['ip', 'netns', 'exec', nat, 'nft', '-f', '-'], natRules(kind))
    }
    const block = managementBlock()
    /** The management link of namespace `name`, the `i`th of this topology: its address in the namespace. */
    const managementLink = (name: string, i: number): string => {
      const host = `${p}m${i}`
      const [here, there] = [`${block}.${4 * i + 1}`, `${block}.${4 * i + 2}`]
      run(['ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', name])
      run(['ip', 'addr', 'add', `${here}/30`, 'dev', host])
      run(['ip', 'link', 'set', host, 'up'])
      inNs(name, 'addr', 'add', `${there}/30`, 'dev', 'mgmt0')
      inNs(name, 'link', 'set', 'mgmt0', 'up')
      return there
    }
    const mgmt = { wan: '', site: '', reader: '' }
    for (const [i, role] of (['wan', 'site', 'reader'] as const).entries()) mgmt[role] = managementLink(ns[role], i)
    let hosts = 0
    const addWanHost = (role: string, addr: string): { ns: string; mgmt: string } => {
      const name = `${p}-${role}`.slice(0, 15)
      const i = 3 + ++hosts
      run(['ip', 'netns', 'add', name])
      created.push(name)
      inNs(name, 'link', 'set', 'lo', 'up')
      veth(`wanh${hosts}`, ns.wan, 'eth0', name)
      inNs(ns.wan, 'link', 'set', `wanh${hosts}`, 'master', 'br0', 'up')
      inNs(name, 'addr', 'add', `${addr}/24`, 'dev', 'eth0')
      inNs(name, 'link', 'set', 'eth0', 'up')
      return { ns: name, mgmt: managementLink(name, i) }
    }
    const addr = { relay: `${wan}.1`, site: '192.168.1.2', reader: '192.168.2.2' }
    return { ns, addr, mgmt, addWanHost, teardown }
  } catch (error) {
    teardown()
    throw error
  }
}

/** A radmesh node run inside a namespace: its HTTP API (on the management link) and its output. */
export interface NamespacedNode {
  peerId: string
  /** the node's process id (`ip netns exec` execs the node in its own process) */
  pid: number | undefined
  http: string
  output: () => string
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>
  kill(): Promise<void>
}

/** `radmesh start --home HOME ARGS…` inside namespace `ns`, its HTTP API on `mgmt`:PORT; resolves once it runs. */
export async function startInNamespace(
  ns: string,
  mgmt: string,
  home: string,
  args: string[]
): Promise<NamespacedNode> {
  const http = `${mgmt}:7480`
  const child = ownChild(
    spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        CLI,
        'start',
        '--home',
        home,
        '--http',
        http,
        '--no-mdns',
        '--preallocate',
        '4',
        ...args
      ],
      { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] }
    )
  )
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  await waitFor(
    `node on ${home} in ${ns} to start`,
    () => {
      if (child.exitCode !== null) throw new Error(`the node in ${ns} exited ${child.exitCode}:\n${output}`)
      return /^viewer: /m.test(output) ? true : undefined
    },
    30_000,
    50
  )
  const token = (await fs.readFile(join(home, 'api-token'), 'utf8')).trim()
  return {
    peerId: /peer (12D3\S+)/.exec(output)?.[1] ?? '',
    pid: child.pid,
    http: `http://${http}`,
    output: () => output,
    async api<T>(method: string, path: string, body?: unknown) {
      const response = await fetch(`http://${http}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' })
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: response.status, body: (await response.json()) as T }
    },
    kill: async () => {
      await killChild(child)
    }
  }
}

/** A relay member on the WAN, a site behind NAT A and a reader behind NAT B (`startBehindNats`). */
export interface MembersBehindNats {
  relay: NamespacedNode
  site: NamespacedNode
  reader: NamespacedNode
  /** the relay's address (`/ip4/…/tcp/7400/p2p/RELAY`) */
  relayAddr: string
}

/**
 * Starts, in `net`, a relay member on the WAN (`--relay`), a site behind NAT A that holds a reservation on it
 * (`--relay-via`), waited for at the relay, and a reader behind NAT B that dials the site through it; each with
 * `args[role]` added. Each node goes to `started` as soon as it runs, to be killed after whatever happens next.
 */
export async function startBehindNats(
  net: Namespaces,
  homes: Record<'relay' | 'site' | 'reader', string>,
  options: {
    args?: Partial<Record<'relay' | 'site' | 'reader', string[]>>
    /** how long the site may take to reach the relay */
    timeoutMs: number
    started(node: NamespacedNode): void
  }
): Promise<MembersBehindNats> {
  const args = options.args ?? {}
  const relay = await startInNamespace(net.ns.wan, net.mgmt.wan, homes.relay, [
    '--listen',
    `/ip4/${net.addr.relay}/tcp/7400`,
    '--relay',
    ...(args.relay ?? [])
  ])
  options.started(relay)
  const relayAddr = `/ip4/${net.addr.relay}/tcp/7400/p2p/${relay.peerId}`
  const site = await startInNamespace(net.ns.site, net.mgmt.site, homes.site, [
    '--listen',
    `/ip4/${net.addr.site}/tcp/7400`,
    '--relay-via',
    relayAddr,
    ...(args.site ?? [])
  ])
  options.started(site)
  await waitFor(
    'the site at the relay',
    async () =>
      (await relay.api<Array<{ peerId: string }>>('GET', '/api/peers')).body.some(p => p.peerId === site.peerId),
    options.timeoutMs
  )
  const reader = await startInNamespace(net.ns.reader, net.mgmt.reader, homes.reader, [
    '--listen',
    `/ip4/${net.addr.reader}/tcp/7400`,
    '--peer',
    `${relayAddr}/p2p-circuit/p2p/${site.peerId}`,
    ...(args.reader ?? [])
  ])
  options.started(reader)
  return { relay, site, reader, relayAddr }
}
