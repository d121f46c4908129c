// Deno.serve with Deno.upgradeWebSocket. Hono decides the upgrade; the socket events call
// the Gateway directly with the socket's one data object.
import { SUBPROTOCOL } from "../../app/envelope/frames.ts";
import { log } from "../../app/ops/log.ts";
import type { Conn, Listening, RuntimePieces } from "../../app/startup.ts";
import { listenError } from "../shared/listen-error.ts";

type Ctx = Parameters<RuntimePieces<unknown>["listen"]>[0];

export function listenDeno({ config, secrets, gw, app }: Ctx): Promise<Listening> {
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

  let server: Deno.HttpServer<Deno.NetAddr>;
  return new Promise((resolve, reject) => {
    try {
      server = serve(config.port, (addr) =>
        resolve({
          port: addr.port,
          // shutdown() closes what sockets are left (1001 "Server shutting down") and waits for them.
          close: () => Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 1000))]),
        }),
      );
    } catch (err) {
      reject(listenError(err));
    }
  });
}
