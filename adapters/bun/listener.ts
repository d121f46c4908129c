// Bun.serve with native WebSockets. Hono decides the upgrade; the socket events call the
// Gateway directly with the socket's one data object.
import type { Server } from "bun";
import { SUBPROTOCOL } from "../../app/envelope/frames.ts";
import { log } from "../../app/ops/log.ts";
import type { Conn, Listening, RuntimePieces } from "../../app/startup.ts";
import { guardAccept } from "../shared/accept-guard.ts";
import type { BunTopics } from "./topics.ts";
import { closeCode } from "../shared/close-code.ts";
import { listenError } from "../shared/listen-error.ts";

/** The upgrade response's extra header for a client that chose the wsgate.v1 envelope. */
const ENVELOPE = { "Sec-WebSocket-Protocol": SUBPROTOCOL };

type Ctx = Parameters<RuntimePieces<unknown>["listen"]>[0];

export function listenBun({ config, secrets, gw, app }: Ctx, fdLimit: number, topics?: BunTopics): Listening {
  // A function so the accept guard can listen again after pausing, with the same handlers.
  const serve = (port: number): Server<Conn> =>
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
        close: (ws, code, reason) => gw.close(ws.data, closeCode(code, reason), reason),
      },
      error(err) {
        log("error", "request failed", { error: String(err) });
        return new Response("internal error\n", { status: 500 });
      },
    });
  let server: Server<Conn>;
  try {
    server = serve(config.port);
  } catch (err) {
    throw listenError(err);
  }
  topics?.serving(server);
  const port = server.port!;
  guardAccept(fdLimit, {
    // A stopped server keeps serving its open sockets; a new one takes over listening.
    pause: () => server.stop(false),
    resume() {
      try {
        server = serve(port);
        topics?.serving(server);
        return true;
      } catch {
        return false;
      }
    },
    stopping: () => gw.isDraining(),
  });
  return { port, close: () => server.stop(false) };
}
