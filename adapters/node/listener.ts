// uWebSockets.js on Node. Hono decides every request and every upgrade; the socket events
// call the Gateway directly with the socket's one Conn.
import { createServer } from "node:net";
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocket } from "@btc-vision/uwebsockets.js";
import { SUBPROTOCOL } from "../../app/envelope/frames.ts";
import { log } from "../../app/ops/log.ts";
import { type Conn, ListenError, type Listening, type RuntimePieces } from "../../app/startup.ts";
import { guardAccept } from "../shared/accept-guard.ts";
import { closeCode } from "../shared/close-code.ts";
import { listenError } from "../shared/listen-error.ts";
import { httpHandler, readRequest, refuse, reply, watch } from "./http-bridge.ts";
import type { Data } from "./transport.ts";
import type { UwsTopics } from "./topics.ts";
import { corksAsyncUpgrades, type Uws } from "./uws.ts";

type Ctx = Parameters<RuntimePieces<unknown>["listen"]>[0];
/** Never sent: tells the upgrade handler that Hono admitted the connection. */
const UPGRADED = new Response(null, { status: 204 });
const closeReason = new TextDecoder();

export async function listenNode(uWS: Uws, { config, secrets, gw, app }: Ctx, fdLimit: number, topics?: UwsTopics): Promise<Listening> {
  // the start-up has read both files, so uWS (which takes paths) will find them.
  const server: TemplatedApp = secrets.tls ? uWS.SSLApp({ cert_file_name: config.tlsCert, key_file_name: config.tlsKey }) : uWS.App();
  server.any("/*", httpHandler(app));
  const cork = corksAsyncUpgrades(uWS);
  topics?.serving(server);
  const behavior = {
    // uWS cuts a frame over its own limit without a close frame (the client sees 1006), so it
    // gets headroom: frames up to 4x the limit reach the gateway, which closes with 1009.
    maxPayloadLength: Math.min(4 * config.maxMessageBytes, 2 ** 31 - 1),
    // uWS rejects 1..7 s; its timer granularity is about 4 s anyway.
    idleTimeout: config.idleTimeoutS === 0 ? 0 : Math.max(8, config.idleTimeoutS),
    // Past it uWS drops the frame (send returns 2) and the gateway closes the socket with 4002 (slow consumer).
    maxBackpressure: config.maxBufferedBytes,
    sendPingsAutomatically: true,
    upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t) {
      const p = watch(res, null);
      const key = req.getHeader("sec-websocket-key");
      const protocol = req.getHeader("sec-websocket-protocol");
      const extensions = req.getHeader("sec-websocket-extensions");
      let conn: Conn | null = null;
      const finish = (response: Response) => {
        if (p.done) return;
        if (response !== UPGRADED) return void reply(res, p, response);
        p.done = true;
        // The envelope selects wsgate.v1 alone; raw mode answers exactly as it always has.
        const upgrade = () => res.upgrade<Data>({ conn: conn! }, key, conn!.envelope ? SUBPROTOCOL : protocol, extensions, context);
        if (cork) res.cork(upgrade);
        else upgrade();
      };
      try {
        const head = readRequest(req);
        const out = app.fetch(new Request(head.url, { method: head.method, headers: head.headers }), {
          upgrade: (_req: Request, c: Conn) => {
            conn = c;
            return UPGRADED;
          },
        });
        if (out instanceof Promise) {
          out.then(finish, (err) => {
            log("error", "upgrade failed", { error: String(err) });
            refuse(res, p, 500, "internal error\n");
          });
        } else {
          finish(out);
        }
      } catch (err) {
        log("warn", "upgrade request refused", { error: String(err) });
        refuse(res, p, 400, "bad request\n");
      }
    },
    open: (ws: WebSocket<Data>) => gw.open(ws.getUserData().conn, ws),
    // The ArrayBuffer is only valid during this call, and the NATS client keeps published bytes until it flushes.
    message: (ws: WebSocket<Data>, message: ArrayBuffer, isBinary: boolean) => gw.message(ws.getUserData().conn, new Uint8Array(message.slice(0)), isBinary),
    close: (ws: WebSocket<Data>, code: number, message: ArrayBuffer) => {
      const conn = ws.getUserData().conn;
      const reason = message.byteLength ? closeReason.decode(message) : undefined;
      gw.close(conn, closeCode(code, reason), reason);
      conn.ws = null; // the transport's guard: this socket must not be touched again
    },
  };
  // uWS matches "/ws/*" only below /ws, so the bare path needs its own route. Requests without
  // a WebSocket key fall through to the HTTP routes (Hono answers 426).
  server.ws<Data>("/ws", behavior).ws<Data>("/ws/*", behavior);

  let listenSocket: us_listen_socket | false = false;
  const listen = (port: number) => {
    server.listen(config.host, port, (s) => {
      listenSocket = s;
    });
    return listenSocket;
  };
  if (!listen(config.port)) throw await whyNotListening(config.host, config.port);
  const port = uWS.us_socket_local_port(listenSocket as never);
  const close = () => {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    listenSocket = false;
  };
  guardAccept(fdLimit, { pause: close, resume: () => !!listen(port), stopping: () => gw.isDraining() });
  return { port, close };
}

/**
 * uWS says only that listen failed. Binding the same address with Node's own socket
 * (closed at once) gets the kernel's reason: EADDRINUSE, EADDRNOTAVAIL, EACCES...
 */
export function whyNotListening(host: string, port: number): Promise<ListenError> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", (err) => resolve(listenError(err)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(new ListenError("uWebSockets.js could not listen (the address is free now)"))));
  });
}
