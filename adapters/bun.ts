// Bun runtime: Bun.serve with native WebSockets. Hono decides the upgrade; the
// socket events call the Gateway directly with the socket's one data object.
import type { ServerWebSocket } from "bun";
import { dlopen, FFIType } from "bun:ffi";
import { readFileSync } from "node:fs";
import { type Conn, configOrExit, createGateway, drainer, logStart, secretsOrExit, type Transport } from "../app/startup.ts";
import { log } from "../app/ops/log.ts";
import { SUBPROTOCOL } from "../app/envelope/frames.ts";
import { guardAccept } from "./accept-guard.ts";
import { runCli } from "./cli.ts";
import { serveMetrics } from "./metrics-listener.ts";
import { processStats } from "./process-stats.ts";

// The command line first: only `serve` (the default) goes on to start the gateway below.
const cliExit = await runCli(process.argv.slice(2), { serve: async () => {} });
if (cliExit !== undefined) process.exit(cliExit);
const config = configOrExit(process.env, (code) => process.exit(code));
/** The upgrade response's extra header for a client that chose the wsgate.v1 envelope. */
const ENVELOPE = { "Sec-WebSocket-Protocol": SUBPROTOCOL };

const transport: Transport<ServerWebSocket<Conn>> = {
  runtime: "bun",
  textAsString: true,
  send: (ws, data, text) => (text ? ws.sendText(data as string) : ws.sendBinary(data as Uint8Array)),
  collectGarbage: () => Bun.gc(true),
  processStats,
  close: (ws, code, reason) => ws.close(code, reason),
  buffered: (ws) => ws.getBufferedAmount(),
  terminate: (ws) => ws.terminate(),
};

const secrets = await secretsOrExit(config, (path) => readFileSync(path, "utf8"), (code) => process.exit(code));
const { gw, app } = createGateway(config, transport, secrets);
const fdLimit = raiseOpenFilesLimit();
gw.setOpenFilesLimit(fdLimit);

// A function so the accept guard can listen again after pausing, with the same handlers.
const serve = (port: number) =>
  Bun.serve<Conn>({
    port,
    hostname: config.host,
    reusePort: config.workers > 1, // scripts/start.sh runs WSGATE_WORKERS processes on one port
    tls: secrets.tls ?? undefined,
    fetch(req, srv) {
      return app.fetch(req, {
        upgrade: (r: Request, conn: Conn) =>
          srv.upgrade(r, conn.envelope ? { data: conn, headers: ENVELOPE } : { data: conn })
            ? (undefined as unknown as Response) // Bun owns the socket now; no response is written.
            : new Response("upgrade failed\n", { status: 400 }),
      });
    },
    websocket: {
      maxPayloadLength: config.maxMessageBytes,
      idleTimeout: config.idleTimeoutS,
      sendPings: true,
      // Past the limit Bun drops the frame and the gateway closes the socket with 4002 (slow consumer).
      backpressureLimit: config.maxBufferedBytes,
      closeOnBackpressureLimit: false,
      open: (ws) => gw.open(ws.data, ws),
      message: (ws, message) => gw.message(ws.data, message, typeof message !== "string"),
      close: (ws, code, reason) => gw.close(ws.data, code, reason),
    },
    error(err) {
      log("error", "request failed", { error: String(err) });
      return new Response("internal error\n", { status: 500 });
    },
  });
let server = serve(config.port);
const port = server.port!;

await gw.broker.start();
logStart(gw, { host: config.host, port });
await serveMetrics(gw, (code) => process.exit(code));

guardAccept(fdLimit, {
  // A stopped server keeps serving its open sockets; a new one takes over listening.
  pause: () => server.stop(false),
  resume() {
    try {
      server = serve(port);
      return true;
    } catch {
      return false;
    }
  },
  stopping: () => gw.isDraining(),
});
const drain = drainer(gw, (code) => process.exit(code), {
  stopAccepting: () => server.stop(false), // open sockets are closed with 1001 by the gateway
});
process.on("SIGTERM", drain);
process.on("SIGINT", drain);

/** Each socket is a descriptor: raise the soft open-files limit to the hard one (Bun has no API; libc does). */
function raiseOpenFilesLimit(): number {
  const RLIMIT_NOFILE = 7;
  try {
    const libc = dlopen("libc.so.6", {
      getrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      setrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    });
    const lim = new BigUint64Array(2); // { rlim_cur, rlim_max }
    if (libc.symbols.getrlimit(RLIMIT_NOFILE, lim) !== 0) return 0;
    if (lim[0] < lim[1]) {
      lim[0] = lim[1];
      libc.symbols.setrlimit(RLIMIT_NOFILE, lim);
      libc.symbols.getrlimit(RLIMIT_NOFILE, lim);
    }
    libc.close();
    return Number(lim[0]);
  } catch (err) {
    log("warn", "could not read or raise the open-files limit", { error: String(err) });
    return 0;
  }
}
