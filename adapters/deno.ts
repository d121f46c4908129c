// Deno runtime: Deno.serve with Deno.upgradeWebSocket. Hono decides the upgrade; the
// socket events call the Gateway directly with the socket's one data object.
import { type Conn, configOrExit, createGateway, drainer, logStart, secretsOrExit, type Transport } from "../app/startup.ts";
import { log } from "../app/ops/log.ts";
import { SUBPROTOCOL } from "../app/envelope/frames.ts";
import { serveMetrics } from "./metrics-listener.ts";
import { processStats } from "./process-stats.ts";

const config = configOrExit(Deno.env.toObject(), (code) => Deno.exit(code));

/** Deno's send never refuses: past this much unsent data, report the frame as queued behind backpressure. */
const BACKPRESSURE_BYTES = Math.min(1024 * 1024, config.maxBufferedBytes);

const transport: Transport<WebSocket> = {
  runtime: "deno",
  textAsString: true,
  send(ws, data) {
    // send() on a closing socket is silently discarded; report it as the drop it is.
    if (ws.readyState !== WebSocket.OPEN) return 0;
    ws.send(data as string | Uint8Array<ArrayBuffer>);
    return ws.bufferedAmount > BACKPRESSURE_BYTES ? -1 : 1;
  },
  close(ws, code, reason) {
    if (ws.readyState >= WebSocket.CLOSING) return;
    try {
      ws.close(code, reason);
    } catch {
      // Already gone (the peer closed between the check and here): nothing to send.
    }
  },
  buffered: (ws) => ws.bufferedAmount,
  terminate: abortSocket,
  processStats,
};

/**
 * Deno has no public call that drops a server WebSocket: close() queues its close frame
 * behind every unsent frame, and a peer that stopped reading never lets those drain, so
 * the socket and its buffer would live as long as the TCP connection. Closing the
 * socket's resource is what Deno's own event loop does to a peer that breaks the close
 * handshake; onclose then fires as usual. Without the internal handle, fall back to
 * close(), which is all a later Deno might still offer.
 */
function abortSocket(ws: WebSocket) {
  const core = (Deno as unknown as Record<symbol, { core?: { tryClose?(rid: number): void } }>)[(Deno as unknown as { internal: symbol }).internal]?.core;
  const ridKey = Object.getOwnPropertySymbols(ws).find((s) => s.description === "[[rid]]");
  const rid = ridKey ? (ws as unknown as Record<symbol, unknown>)[ridKey] : undefined;
  if (typeof rid === "number" && typeof core?.tryClose === "function") core.tryClose(rid);
  else transport.close(ws, 1008, "closing");
}

const secrets = await secretsOrExit(config, (path) => Deno.readTextFileSync(path), (code) => Deno.exit(code));
const { gw, app } = createGateway(config, transport, secrets);
gw.setOpenFilesLimit(raiseOpenFilesLimit());

function upgrade(req: Request, conn: Conn): Response {
  let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
  try {
    // Deno pings the peer and closes it when no pong comes back within idleTimeout (0 disables): Bun's sendPings.
    upgraded = Deno.upgradeWebSocket(req, { idleTimeout: config.idleTimeoutS, protocol: conn.envelope ? SUBPROTOCOL : undefined });
  } catch {
    return new Response("upgrade failed\n", { status: 400 });
  }
  const { socket, response } = upgraded;
  socket.binaryType = "arraybuffer"; // the default Blob would need an async read per frame
  socket.onopen = () => gw.open(conn, socket);
  socket.onmessage = (e: MessageEvent<string | ArrayBuffer>) => {
    const data = e.data;
    if (typeof data === "string") gw.message(conn, data, false);
    else gw.message(conn, new Uint8Array(data), true);
  };
  socket.onclose = (e) => gw.close(conn, e.code, e.reason);
  socket.onerror = () => {}; // onclose always follows; without a handler Deno reports it as uncaught
  return response;
}

let listening!: (addr: Deno.NetAddr) => void;
const listened = new Promise<Deno.NetAddr>((r) => (listening = r));
let server = serve(config.port, (addr) => listening(addr));

/**
 * Deno.serve gives up for good when accept() fails (EMFILE once every descriptor is taken):
 * its accept loop ends and `finished` rejects. Sockets already open live on; listen again on
 * the same port, with backoff while descriptors are still short, instead of dying unhandled.
 */
function serve(port: number, onListen: (addr: Deno.NetAddr) => void): Deno.HttpServer<Deno.NetAddr> {
  const s = Deno.serve(
    {
      hostname: config.host,
      reusePort: config.workers > 1,
      port,
      ...(secrets.tls ?? {}),
      onListen, // also silences Deno's own "Listening on" line
      onError(err) {
        log("error", "request failed", { error: String(err) });
        return new Response("internal error\n", { status: 500 });
      },
    },
    (req) => app.fetch(req, { upgrade }),
  );
  s.finished.catch((err) => {
    if (gw.isDraining()) return;
    log("error", "listener failed; listening again", { error: String(err) });
    relisten(s.addr.port, 250);
  });
  return s;
}

function relisten(port: number, waitMs: number) {
  setTimeout(() => {
    if (gw.isDraining()) return;
    try {
      server = serve(port, () => log("info", "listening again", { port }));
    } catch (err) {
      log("warn", "cannot listen yet; retrying", { port, retryInMs: waitMs, error: String(err) });
      relisten(port, Math.min(waitMs * 2, 5_000));
    }
  }, waitMs);
}

await gw.broker.start();
const addr = await listened;
logStart(gw, { host: config.host, port: addr.port });
await serveMetrics(gw, (code) => Deno.exit(code));

// Upgrades are refused once draining. server.shutdown() would close the remaining sockets itself
// (1001 "Server shutting down") and wait for them, so the gateway's go first and their close
// handshakes finish; the listener stops after that.
const drain = drainer(gw, (code) => Deno.exit(code), {
  afterSockets: () => Promise.race([server.shutdown(), sleep(1000)]),
});
Deno.addSignalListener("SIGTERM", drain);
Deno.addSignalListener("SIGINT", drain);

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Each socket is a descriptor and Deno has no rlimit API: ask libc. Deno raises the soft limit to
 * the hard one itself at start on Linux, so setrlimit is only a guard should that ever change.
 */
function raiseOpenFilesLimit(): number {
  const RLIMIT_NOFILE = 7;
  try {
    const libc = Deno.dlopen("libc.so.6", {
      getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
      setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    });
    try {
      const lim = new BigUint64Array(2); // { rlim_cur, rlim_max }
      if (libc.symbols.getrlimit(RLIMIT_NOFILE, lim) !== 0) return 0;
      if (lim[0] < lim[1]) {
        lim[0] = lim[1];
        libc.symbols.setrlimit(RLIMIT_NOFILE, lim);
        libc.symbols.getrlimit(RLIMIT_NOFILE, lim);
      }
      return Number(lim[0]);
    } finally {
      libc.close();
    }
  } catch (err) {
    // No FFI or no glibc (musl): read the limit instead. Deno allows /proc/self only under --allow-all.
    try {
      const line = Deno.readTextFileSync("/proc/self/limits").split("\n").find((l) => l.startsWith("Max open files"));
      const soft = Number(line?.split(/\s{2,}/)[1]);
      if (soft > 0) return soft;
    } catch {
      // fall through to the warning
    }
    log("warn", "could not read or raise the open-files limit", { error: String(err) });
    return 0;
  }
}
