// The Node (uWebSockets.js) adapter's runtime mapping: send results, close codes, the
// HTTP bridge between uWS and Hono, and the choice of uWS build. uWS objects are stand-ins.
import { describe, expect, test } from "bun:test";
import type { HttpRequest, HttpResponse } from "@btc-vision/uwebsockets.js";
import { httpHandler, MAX_BODY, readRequest, reply, watch } from "../../adapters/node/http-bridge.ts";
import { sendStatus, uwsTransport, type WS } from "../../adapters/node/transport.ts";
import { closeCode } from "../../adapters/shared/close-code.ts";
import { corksAsyncUpgrades, loadUws } from "../../adapters/node/uws.ts";
import { waitFor } from "../helpers/procs.ts";

describe("node transport", () => {
  test("uWS's send result maps to the gateway's: 1 sent, 0 queued behind backpressure, 2 dropped", () => {
    expect(sendStatus(1)).toBe(1);
    expect(sendStatus(0)).toBe(-1);
    expect(sendStatus(2)).toBe(0);
  });

  test("uWS's (and Bun's) 1006 'Received too big message' reaches the gateway as 1009; other closes are unchanged", () => {
    expect(closeCode(1006, "Received too big message")).toBe(1009);
    expect(closeCode(1006, undefined)).toBe(1006);
    expect(closeCode(1000, "Received too big message")).toBe(1000);
    expect(closeCode(4002, "slow consumer")).toBe(4002);
  });

  test("a closed socket (null) is never touched: sends are drops, close and terminate do nothing", () => {
    expect(uwsTransport.send(null, new Uint8Array(1), false)).toBe(0);
    expect(() => uwsTransport.close(null, 1001, "x")).not.toThrow();
    expect(() => uwsTransport.terminate!(null)).not.toThrow();
    expect(uwsTransport.buffered!(null)).toBe(0);
  });

  test("text goes out as a text frame and binary as binary, with the send result mapped", () => {
    const sent: [number, boolean][] = [];
    const ws = { send: (d: Uint8Array, isBinary: boolean) => (sent.push([d.length, isBinary]), 0) } as unknown as WS;
    expect(uwsTransport.send(ws, new Uint8Array(2), true)).toBe(-1);
    expect(uwsTransport.send(ws, new Uint8Array(3), false)).toBe(-1);
    expect(sent).toEqual([
      [2, false],
      [3, true],
    ]);
  });
});

function fakeRequest(method: string, url: string, headers: [string, string][], query?: string): HttpRequest {
  return {
    forEach: (cb: (k: string, v: string) => void) => headers.forEach(([k, v]) => cb(k, v)),
    getHeader: (name: string) => headers.find(([k]) => k === name)?.[1] ?? "",
    getUrl: () => url,
    getQuery: () => query,
    getCaseSensitiveMethod: () => method,
  } as unknown as HttpRequest;
}

/** Records what is written to a uWS response. */
function fakeResponse() {
  const out = { status: "", headers: [] as [string, string][], body: "", ended: false, headOnly: false, chunks: [] as string[] };
  const handlers: { aborted?: () => void; data?: (chunk: ArrayBuffer, isLast: boolean) => void } = {};
  const text = (b?: unknown) => (b === undefined ? "" : typeof b === "string" ? b : new TextDecoder().decode(b as Uint8Array));
  const res = {
    onAborted: (cb: () => void) => void (handlers.aborted = cb),
    onData: (cb: (chunk: ArrayBuffer, isLast: boolean) => void) => void (handlers.data = cb),
    onWritable: () => res,
    cork: (fn: () => void) => (fn(), res),
    writeStatus: (s: string) => ((out.status = s), res),
    writeHeader: (k: string, v: string) => (out.headers.push([k, v]), res),
    write: (chunk: unknown) => (out.chunks.push(text(chunk)), true),
    end: (body?: unknown) => ((out.body = text(body)), (out.ended = true), res),
    endWithoutBody: () => ((out.headOnly = true), (out.ended = true), res),
    close: () => res,
  } as unknown as HttpResponse;
  return { res, out, handlers };
}

describe("node HTTP bridge", () => {
  test("a uWS request becomes a web request: method, host, path, query, and several Cookie lines joined with '; '", () => {
    const head = readRequest(fakeRequest("POST", "/v1/publish/s/u", [["host", "gw:8080"], ["cookie", "service=s1"], ["cookie", "user=u1"], ["x-a", "1"]], "q=2"));
    expect(head.method).toBe("POST");
    expect(head.url).toBe("http://gw:8080/v1/publish/s/u?q=2");
    expect(head.headers.get("cookie")).toBe("service=s1; user=u1");
    expect(head.headers.get("x-a")).toBe("1");
    expect(readRequest(fakeRequest("GET", "/healthz", [])).url).toBe("http://localhost/healthz");
  });

  test("a web response is written whole with its status line and headers, leaving framing headers to uWS", async () => {
    const { res, out } = fakeResponse();
    await reply(res, watch(res, null), new Response("not here\n", { status: 404, headers: { "x-a": "1", "content-length": "9", connection: "close" } }));
    expect(out.status).toBe("404 Not Found");
    expect(out.headers).toContainEqual(["x-a", "1"]);
    expect(out.headers.map(([k]) => k)).not.toContain("content-length");
    expect(out.headers.map(([k]) => k)).not.toContain("connection");
    expect(out.body).toBe("not here\n");
  });

  test("a HEAD answer has headers and no body", async () => {
    const { res, out } = fakeResponse();
    await reply(res, watch(res, null), new Response("ok\n"), true);
    expect(out.status).toBe("200 OK");
    expect(out.headOnly).toBe(true);
  });

  test("a live stream (Server-Sent Events) is written chunk by chunk as it comes, then ended", async () => {
    const { res, out } = fakeResponse();
    let push!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (push = c) });
    push.enqueue(new TextEncoder().encode("data: 1\n\n"));
    const done = reply(res, watch(res, null), new Response(body, { headers: { "content-type": "text/event-stream" } }));
    await waitFor("the first chunk written", () => out.chunks.length === 1);
    push.enqueue(new TextEncoder().encode("data: 2\n\n"));
    await waitFor("the second chunk written", () => out.chunks.length === 2);
    push.close();
    await done;
    expect(out.chunks).toEqual(["data: 1\n\n", "data: 2\n\n"]);
    expect(out.ended).toBe(true);
  });

  test("a response to a client that went away is not written", async () => {
    const { res, out, handlers } = fakeResponse();
    const p = watch(res, null);
    handlers.aborted!();
    await reply(res, p, new Response("late\n"));
    expect(out.status).toBe("");
    expect(out.ended).toBe(false);
  });

  test("a body that arrives in chunks reaches the app whole", async () => {
    const seen: string[] = [];
    const app = { fetch: async (req: Request) => (seen.push(`${req.method} ${await req.text()}`), new Response("accepted\n", { status: 202 })) };
    const { res, out, handlers } = fakeResponse();
    httpHandler(app)(res, fakeRequest("POST", "/v1/publish/s/u", [["host", "gw"]]));
    handlers.data!(new TextEncoder().encode("hello ").buffer as ArrayBuffer, false);
    handlers.data!(new TextEncoder().encode("world").buffer as ArrayBuffer, true);
    await waitFor("the response ended", () => out.ended);
    expect(seen).toEqual(["POST hello world"]);
    expect(out.status).toBe("202 Accepted");
  });

  test("a body over the limit gets 413 without reaching the app, whether declared or chunked", async () => {
    const app = {
      fetch: () => {
        throw new Error("must not be called");
      },
    };
    const declared = fakeResponse();
    httpHandler(app)(declared.res, fakeRequest("POST", "/v1/publish/s/u", [["content-length", String(MAX_BODY + 1)]]));
    expect(declared.out.status).toBe("413 Payload Too Large");
    const chunked = fakeResponse();
    httpHandler(app)(chunked.res, fakeRequest("POST", "/v1/publish/s/u", []));
    chunked.handlers.data!(new ArrayBuffer(MAX_BODY), false);
    chunked.handlers.data!(new ArrayBuffer(1), false);
    expect(chunked.out.status).toBe("413 Payload Too Large");
  });
});

describe("uWS build choice", () => {
  test("the current build is used when it loads, the older one when it does not, and neither loading names both causes", async () => {
    const current = { App: "current" };
    const older = { App: "older" };
    expect(await loadUws(async () => ({ default: current }))).toBe(current as never);
    const tried: string[] = [];
    const fallback = await loadUws(async (name) => {
      tried.push(name);
      if (name === "@btc-vision/uwebsockets.js") throw new Error("This version of uWS.js ...\n\nError: libc.so.6: version `GLIBC_2.38' not found");
      return older;
    });
    expect(fallback).toBe(older as never);
    expect(corksAsyncUpgrades(fallback)).toBe(false);
    expect(corksAsyncUpgrades(await loadUws(async () => ({ default: { App: "current" } })))).toBe(true);
    expect(tried).toEqual(["@btc-vision/uwebsockets.js", "uws-pack"]);
    const none = loadUws(async (name) => {
      throw new Error(`no build for ${name}`);
    });
    await expect(none).rejects.toThrow(/no uWebSockets.js build loads on Node .*@btc-vision\/uwebsockets.js: no build for @btc-vision\/uwebsockets.js; uws-pack: no build for uws-pack/);
  });
});
