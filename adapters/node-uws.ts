// Node 20 runtime: uWebSockets.js. Hono decides every request and every upgrade; the
// socket events call the Gateway directly with the socket's one Conn.
import { readFileSync } from "node:fs";
import { STATUS_CODES } from "node:http";
// The package is CommonJS whose exports Node cannot detect statically: only the default import works.
import uWS from "@trufflesuite/uws-js-unofficial";
import type { HttpRequest, HttpResponse, us_listen_socket, us_socket_context_t, WebSocket } from "@trufflesuite/uws-js-unofficial";
import { type Conn, configOrExit, createGateway, drainer, logStart, secretsOrExit, type Transport } from "../app/startup.ts";
import { log } from "../app/ops/log.ts";
import { SUBPROTOCOL } from "../app/envelope/frames.ts";
import { guardAccept } from "./accept-guard.ts";
import { serveMetrics } from "./metrics-listener.ts";
import { processStats } from "./process-stats.ts";

/** uWS copies these properties onto the socket object, so keep exactly one. */
type Data = { conn: Conn };
type WS = WebSocket<Data>;

/** Same as the publish route's limit (NATS max_payload): refuse larger bodies before buffering them. */
const MAX_BODY = 1024 * 1024;
/** Never sent: tells the upgrade handler that Hono admitted the connection. */
const UPGRADED = new Response(null, { status: 204 });
const PENDING = Symbol("pending");
const closeReason = new TextDecoder();
const noop = () => {};

const config = configOrExit(process.env, (code) => process.exit(code));

const transport: Transport<WS | null> = {
  runtime: "node",
  textAsString: false,
  // conn.ws is null once closed: uWS throws on any call on a closed socket.
  send(ws, data, text) {
    if (ws === null) return 0;
    const r = ws.send(data as Uint8Array, !text);
    return r === 1 ? 1 : r === 0 ? -1 : 0; // uWS: 1 sent, 0 queued (backpressure), 2 dropped
  },
  close(ws, code, reason) {
    if (ws !== null) ws.end(code, reason);
  },
  buffered: (ws) => (ws === null ? 0 : ws.getBufferedAmount()),
  terminate(ws) {
    if (ws !== null) ws.close();
  },
  processStats,
};

const secrets = await secretsOrExit(config, (path) => readFileSync(path, "utf8"), (code) => process.exit(code));
const { gw, app } = createGateway(config, transport, secrets);
const fdLimit = openFilesLimit();
gw.setOpenFilesLimit(fdLimit);

/** Per HTTP response: uWS forbids touching `res` once aborted or ended. */
type Pending = {
  done: boolean;
  reader: ReadableStreamDefaultReader<Uint8Array> | null;
  wake: (() => void) | null;
  abort: AbortController | null;
};

function watch(res: HttpResponse, abort: AbortController | null): Pending {
  const p: Pending = { done: false, reader: null, wake: null, abort };
  res.onAborted(() => {
    p.done = true;
    p.abort?.abort();
    p.reader?.cancel().catch(noop); // lets the SSE route untap the broker
    p.wake?.();
  });
  return p;
}

/** Everything needed from `req`, which is only valid until the handler returns. */
function readRequest(req: HttpRequest): { method: string; url: string; headers: Headers } {
  const headers = new Headers();
  req.forEach((k, v) => {
    // Several Cookie lines must join with "; " (RFC 6265), not the ", " that append() uses.
    if (k === "cookie" && headers.has(k)) headers.set(k, headers.get(k) + "; " + v);
    else headers.append(k, v);
  });
  const query = req.getQuery(); // undefined, not "", when there is none
  const url = `http://${req.getHeader("host") || "localhost"}${req.getUrl()}${query ? "?" + query : ""}`;
  return { method: req.getCaseSensitiveMethod(), url, headers };
}

function writeHead(res: HttpResponse, response: Response): HttpResponse {
  res.writeStatus(`${response.status} ${STATUS_CODES[response.status] ?? ""}`);
  response.headers.forEach((value, key) => {
    // uWS frames the body itself (Content-Length or chunked) and owns the connection.
    if (key === "content-length" || key === "transfer-encoding" || key === "connection" || key === "keep-alive") return;
    res.writeHeader(key, value);
  });
  return res;
}

async function reply(res: HttpResponse, p: Pending, response: Response, isHead = false): Promise<void> {
  const body = response.body;
  if (p.done) {
    body?.cancel().catch(noop);
    return;
  }
  if (!body || isHead) {
    p.done = true;
    res.cork(() => {
      writeHead(res, response);
      if (isHead) res.endWithoutBody();
      else res.end();
    });
    body?.cancel().catch(noop);
    return;
  }
  const reader = body.getReader();
  p.reader = reader;
  try {
    const first = await reader.read();
    if (p.done) return;
    if (first.done) {
      p.done = true;
      res.cork(() => writeHead(res, response).end());
      return;
    }
    // A body made from a string or bytes has ended by the next turn: send it whole, with a Content-Length.
    const next = reader.read();
    const peek = await Promise.race([next, new Promise<typeof PENDING>((r) => setImmediate(r, PENDING))]);
    if (p.done) return;
    if (peek !== PENDING && peek.done) {
      p.done = true;
      res.cork(() => writeHead(res, response).end(first.value));
      return;
    }
    // A live stream (Server-Sent Events): chunked, one read at a time, waiting out backpressure.
    res.onWritable(() => {
      const w = p.wake;
      p.wake = null;
      w?.();
      return true;
    });
    let ok = true;
    res.cork(() => {
      writeHead(res, response);
      ok = res.write(first.value);
    });
    let chunk = peek === PENDING ? await next : peek;
    for (;;) {
      if (p.done) return;
      if (chunk.done) {
        p.done = true;
        res.cork(() => res.end());
        return;
      }
      const value = chunk.value;
      res.cork(() => (ok = res.write(value)));
      if (!ok) await new Promise<void>((r) => (p.wake = r));
      if (p.done) return;
      chunk = await reader.read();
    }
  } catch (err) {
    // The headers may be out already: all that is left is to cut the connection.
    if (!p.done) {
      log("warn", "response stream failed", { error: String(err) });
      p.done = true;
      res.close();
    }
    reader.cancel().catch(noop);
  }
}

function refuse(res: HttpResponse, p: Pending, status: number, text: string) {
  void reply(res, p, new Response(text, { status, headers: { "content-type": "text/plain; charset=UTF-8" } }));
}

/** Bun's answer when an upgrade is asked for on a request that cannot be upgraded. */
const cannotUpgrade = () => new Response("upgrade failed\n", { status: 400 });

async function serve(res: HttpResponse, p: Pending, head: ReturnType<typeof readRequest>, body: ArrayBuffer | null) {
  let request: Request;
  try {
    request = new Request(head.url, { method: head.method, headers: head.headers, body, signal: p.abort!.signal });
  } catch {
    return refuse(res, p, 400, "bad request\n");
  }
  let response: Response;
  try {
    response = await app.fetch(request, { upgrade: cannotUpgrade });
  } catch (err) {
    log("error", "request failed", { error: String(err) });
    response = new Response("internal error\n", { status: 500 });
  }
  return reply(res, p, response, head.method === "HEAD");
}

function tooLarge(res: HttpResponse, p: Pending) {
  p.done = true;
  // Close the connection: the rest of the body is not read.
  res.cork(() => {
    res.writeStatus("413 Payload Too Large").writeHeader("content-type", "application/json");
    res.end(JSON.stringify({ error: `body over ${MAX_BODY} bytes` }), true);
  });
}

// secretsOrExit has read both files, so uWS (which takes paths) will find them.
const server = secrets.tls ? uWS.SSLApp({ cert_file_name: config.tlsCert, key_file_name: config.tlsKey }) : uWS.App();

server.any("/*", (res, req) => {
  const p = watch(res, new AbortController());
  let head: ReturnType<typeof readRequest>;
  try {
    head = readRequest(req);
  } catch {
    return refuse(res, p, 400, "bad request\n");
  }
  if (head.method === "GET" || head.method === "HEAD") return void serve(res, p, head, null);
  if (Number(req.getHeader("content-length") || 0) > MAX_BODY) return tooLarge(res, p);
  const chunks: ArrayBuffer[] = [];
  let size = 0;
  res.onData((chunk, isLast) => {
    if (p.done) return;
    size += chunk.byteLength;
    if (size > MAX_BODY) return tooLarge(res, p); // chunked bodies declare no length
    chunks.push(chunk.slice(0)); // uWS reuses the chunk's memory after return
    if (!isLast) return;
    if (chunks.length === 1) return void serve(res, p, head, chunks[0]);
    const body = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      body.set(new Uint8Array(c), at);
      at += c.byteLength;
    }
    void serve(res, p, head, body.buffer);
  });
});

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
      res.cork(() => res.upgrade<Data>({ conn: conn! }, key, conn!.envelope ? SUBPROTOCOL : protocol, extensions, context));
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
  open: (ws: WS) => gw.open(ws.getUserData().conn, ws),
  // The ArrayBuffer is only valid during this call, and the NATS client keeps published bytes until it flushes.
  message: (ws: WS, message: ArrayBuffer, isBinary: boolean) => gw.message(ws.getUserData().conn, new Uint8Array(message.slice(0)), isBinary),
  close: (ws: WS, code: number, message: ArrayBuffer) => {
    const conn = ws.getUserData().conn;
    gw.close(conn, code, message.byteLength ? closeReason.decode(message) : undefined);
    conn.ws = null; // the transport's guard: this socket must not be touched again
  },
};
// uWS matches "/ws/*" only below /ws, so the bare path needs its own route. Requests without
// a WebSocket key fall through to the HTTP routes (Hono answers 426).
server.ws<Data>("/ws", behavior).ws<Data>("/ws/*", behavior);

let listenSocket = false as us_listen_socket | false;
server.listen(config.host, config.port, (s) => {
  listenSocket = s;
});
if (!listenSocket) {
  log("error", "could not listen", { host: config.host, port: config.port });
  process.exit(1);
}

await gw.broker.start();
const port = uWS.us_socket_local_port(listenSocket as never);
logStart(gw, { host: config.host, port });
await serveMetrics(gw, (code) => process.exit(code));

guardAccept(fdLimit, {
  pause() {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    listenSocket = false;
  },
  resume() {
    server.listen(config.host, port, (s) => {
      listenSocket = s;
    });
    return !!listenSocket;
  },
  stopping: () => gw.isDraining(),
});

const drain = drainer(gw, (code) => process.exit(code), {
  stopAccepting() {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket); // open sockets are closed with 1001 by the gateway
    listenSocket = false;
  },
});
process.on("SIGTERM", drain);
process.on("SIGINT", drain);

/** Node cannot raise the limit (scripts/start.sh does, with ulimit); read what is in effect. */
function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : 0; // "unlimited" or unknown: no descriptor cap
  } catch (err) {
    log("warn", "could not read the open-files limit", { error: String(err) });
    return 0;
  }
}
