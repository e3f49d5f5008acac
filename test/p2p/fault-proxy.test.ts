/**
 * The userland fault proxy that the exchange fault tests run libp2p through, checked with real sockets
 * against a local echo server and a byte sink: it forwards intact and in order, keeps its rate limit
 * (shared by connections), adds its latency each way, and cuts connections until told to stop.
 */
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, Server, Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type FaultProxy, type FaultProxyOptions, startFaultProxy } from '../../scripts/lib/fault-proxy.ts'

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms: ${what}`))
    }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function listen(server: Server): Promise<number> {
  opened.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  return address.port
}

/** A server that sends back what it receives, and ends when its client ends. */
async function startEcho(): Promise<{ server: Server; port: number }> {
  const server = createServer(socket => {
    opened.push(socket)
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  return { server, port: await listen(server) }
}

/** A server that only counts what it receives; `reached(n)` resolves when n bytes in all have arrived. */
async function startSink(): Promise<{ server: Server; port: number; reached: (n: number) => Promise<void> }> {
  let total = 0
  const waiting: Array<{ n: number; resolve: () => void }> = []
  const server = createServer(socket => {
    opened.push(socket)
    socket.on('error', () => {})
    socket.on('data', (data: Buffer) => {
      total += data.byteLength
      for (const wait of [...waiting]) {
        if (total >= wait.n) {
          waiting.splice(waiting.indexOf(wait), 1)
          wait.resolve()
        }
      }
    })
  })
  const reached = async (n: number): Promise<void> => {
    if (total >= n) return
    await new Promise<void>(resolve => {
      waiting.push({ n, resolve })
    })
  }
  return { server, port: await listen(server), reached }
}

async function dial(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  opened.push(socket)
  socket.setNoDelay(true)
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Resolves when the socket closes, reset or not (events.once would reject on the reset's 'error'). */
const closed = async (socket: Socket): Promise<void> => {
  if (socket.closed) return
  await new Promise<void>(resolve => {
    socket.once('close', () => {
      resolve()
    })
  })
}

/** Sends one byte and waits for it to come back; resolves the round trip in ms. */
async function ping(socket: Socket): Promise<number> {
  const start = performance.now()
  const back = once(socket, 'data')
  socket.write(Buffer.from([42]))
  const [data] = (await within(2000, 'an echo', back)) as [Buffer]
  assert.equal([...data], [42])
  return performance.now() - start
}

/** What a test opened, closed after it whether it passed or not (a server left open would keep uvu running). */
const opened: Array<Socket | Server | FaultProxy> = []

async function proxyTo(port: number, link: Omit<FaultProxyOptions, 'target'> = {}): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, ...link })
  opened.push(proxy)
  return proxy
}

test.after.each(async () => {
  for (const thing of opened.splice(0).reverse()) {
    if (thing instanceof Socket) thing.destroy()
    else if (thing instanceof Server)
      await new Promise<void>(resolve => {
        thing.close(() => {
          resolve()
        })
      })
    else await thing.close()
  }
})

test(
  '2 MB through the proxy and back arrive intact and in order, ' +
    'the end passes both ways, and the counters say 2 MB each way',
  async () => {
    const echo = await startEcho()
    const proxy = await proxyTo(echo.port)
    const sent = randomBytes(2_000_000)
    const client = await dial(proxy.port)
    const received: Buffer[] = []
    client.on('data', (data: Buffer) => {
      received.push(data)
    })
    const ended = once(client, 'end')
    client.end(sent)
    await within(5000, 'the echo to end', ended)
    const back = Buffer.concat(received)
    assert.is(back.byteLength, sent.byteLength)
    assert.is(sha256(back), sha256(sent))
    assert.is(proxy.bytesToTarget, 2_000_000)
    assert.is(proxy.bytesFromTarget, 2_000_000)
    assert.is(proxy.cuts, 0)
  }
)

test('at 8 Mbit/s, 1 MB takes about a second to reach the target', async () => {
  const sink = await startSink()
  const proxy = await proxyTo(sink.port, { bitsPerSecond: 8_000_000 })
  const client = await dial(proxy.port)
  const start = performance.now()
  client.write(randomBytes(1_000_000))
  await within(4000, '1 MB at the sink', sink.reached(1_000_000))
  const seconds = (performance.now() - start) / 1000
  assert.ok(seconds >= 0.8 && seconds <= 1.6, `took ${seconds.toFixed(3)} s`)
  assert.is(proxy.bytesToTarget, 1_000_000)
})

test(
  'the rate limit is one link shared by all connections: two ' +
    'connections of 500 kB each take about a second together',
  async () => {
    const sink = await startSink()
    const proxy = await proxyTo(sink.port, { bitsPerSecond: 8_000_000 })
    const clients = [await dial(proxy.port), await dial(proxy.port)]
    const start = performance.now()
    for (const client of clients) client.write(randomBytes(500_000))
    await within(4000, '1 MB at the sink', sink.reached(1_000_000))
    const seconds = (performance.now() - start) / 1000
    assert.ok(seconds >= 0.8 && seconds <= 1.6, `took ${seconds.toFixed(3)} s`)
  }
)

test(
  'a sender faster than the link is held back (the ' + 'proxy reads no more than about its queue limit ahead)',
  async () => {
    const sink = await startSink()
    const proxy = await proxyTo(sink.port, { bitsPerSecond: 800_000 })
    const client = await dial(proxy.port)
    client.write(randomBytes(20_000_000))
    await new Promise(resolve => setTimeout(resolve, 500))
    // 500 ms at 100 kB/s is ~66 kB delivered; the proxy's queue holds ~1 MiB and the kernel's socket buffers a
    // few MB more, so most of the 20 MB must still wait in the client. A proxy that read without pausing would
    // have taken it all.
    assert.ok(proxy.bytesToTarget < 200_000, `${proxy.bytesToTarget} bytes delivered`)
    assert.ok(client.writableLength > 10_000_000, `only ${client.writableLength} bytes still waiting in the client`)
  }
)

test('a latency of 100 ms makes a ping-pong round trip take at least 200 ms', async () => {
  const echo = await startEcho()
  const direct = await dial(echo.port)
  const baseline = await ping(direct)
  const proxy = await proxyTo(echo.port, { latencyMs: 100 })
  const client = await dial(proxy.port)
  const rtt = await ping(client)
  assert.ok(baseline < 50, `the direct round trip took ${baseline.toFixed(1)} ms`)
  assert.ok(rtt >= 200 && rtt < 600, `the round trip took ${rtt.toFixed(1)} ms`)
})

test(
  'cutting every 300 ms closes open connections (each counted ' +
    'once), new ones work, and setCutting stops and restarts it',
  async () => {
    const echo = await startEcho()
    const proxy = await proxyTo(echo.port, { cutEveryMs: 300 })
    const first = [await dial(proxy.port), await dial(proxy.port)]
    await within(1000, 'both connections to be cut', Promise.all(first.map(closed)))
    assert.is(proxy.cuts, 2)

    // Just after a cut: the next one is ~300 ms away, plenty for a connection and a ping.
    const next = await dial(proxy.port)
    await ping(next)
    proxy.setCutting(false)
    let nextClosed = false
    next.on('close', () => {
      nextClosed = true
    })
    await new Promise(resolve => setTimeout(resolve, 700))
    assert.not.ok(nextClosed, 'cut although cutting was off')
    assert.is(proxy.cuts, 2)
    await ping(next)

    proxy.setCutting(true)
    await within(1000, 'the connection to be cut again', closed(next))
    assert.is(proxy.cuts, 3)
  }
)

test.run()
