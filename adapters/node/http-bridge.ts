// The HTTP side of uWebSockets.js bridged to Hono: a uWS request becomes a web Request,
// a web Response is written back through uWS, streamed when it is a live stream (SSE).
import { STATUS_CODES } from "node:http";
import type { HttpRequest, HttpResponse } from "@btc-vision/uwebsockets.js";
import { log } from "../../app/ops/log.ts";

/** The app as the bridge sees it: Hono's fetch with the upgrade hook in its env. */
export type FetchApp = { fetch(req: Request, env: { upgrade: (req: Request, conn: never) => Response }): Response | Promise<Response> };

/** Same as the publish route's limit (NATS max_payload): refuse larger bodies before buffering them. */
export const MAX_BODY = 1024 * 1024;
const PENDING = Symbol("pending");
const noop = () => {};

/** Per HTTP response: uWS forbids touching `res` once aborted or ended. */
export type Pending = {
  done: boolean;
  reader: ReadableStreamDefaultReader<Uint8Array> | null;
  wake: (() => void) | null;
  abort: AbortController | null;
};

export function watch(res: HttpResponse, abort: AbortController | null): Pending {
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
export function readRequest(req: HttpRequest): { method: string; url: string; headers: Headers } {
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

export async function reply(res: HttpResponse, p: Pending, response: Response, isHead = false): Promise<void> {
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

export function refuse(res: HttpResponse, p: Pending, status: number, text: string) {
  void reply(res, p, new Response(text, { status, headers: { "content-type": "text/plain; charset=UTF-8" } }));
}

/** Bun's answer when an upgrade is asked for on a request that cannot be upgraded. */
const cannotUpgrade = () => new Response("upgrade failed\n", { status: 400 });

async function serve(app: FetchApp, res: HttpResponse, p: Pending, head: ReturnType<typeof readRequest>, body: ArrayBuffer | null) {
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

/** The handler for every plain HTTP request (uWS `any("/*")`). */
export function httpHandler(app: FetchApp) {
  return (res: HttpResponse, req: HttpRequest) => {
    const p = watch(res, new AbortController());
    let head: ReturnType<typeof readRequest>;
    try {
      head = readRequest(req);
    } catch {
      return refuse(res, p, 400, "bad request\n");
    }
    if (head.method === "GET" || head.method === "HEAD") return void serve(app, res, p, head, null);
    if (Number(req.getHeader("content-length") || 0) > MAX_BODY) return tooLarge(res, p);
    const chunks: ArrayBuffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (p.done) return;
      size += chunk.byteLength;
      if (size > MAX_BODY) return tooLarge(res, p); // chunked bodies declare no length
      chunks.push(chunk.slice(0)); // uWS reuses the chunk's memory after return
      if (!isLast) return;
      if (chunks.length === 1) return void serve(app, res, p, head, chunks[0]);
      const body = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        body.set(new Uint8Array(c), at);
        at += c.byteLength;
      }
      void serve(app, res, p, head, body.buffer);
    });
  };
}
