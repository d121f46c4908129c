// The client SDK against a scripted socket: resume first, sequence filtering, the
// close-code table, full-jitter backoff, and request/reply bookkeeping.
import { afterEach, expect, test } from "bun:test";
import { CLOSE } from "../../protocol/close-codes.ts";
import { type ClientOptions, connect, shouldReconnect, type WebSocketLike, type WsgateClient } from "../../sdk/client.ts";
import { waitFor } from "../helpers/procs.ts";

class FakeSocket implements WebSocketLike {
  readyState = 0;
  protocol = "";
  binaryType = "blob";
  sent: any[] = [];
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000, reason = "") {
    this.drop(code, reason);
  }
  open(protocol = "wsgate.v1") {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(f: object) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop(code: number, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const clients: WsgateClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function fake(options: ClientOptions = {}) {
  const sockets: FakeSocket[] = [];
  const client = connect("ws://gateway.test/ws", {
    createWebSocket: (url, protocols) => {
      const s = new FakeSocket(url, protocols);
      sockets.push(s);
      return s;
    },
    backoff: { initialMs: 10, maxMs: 40 },
    ...options,
  });
  clients.push(client);
  const socket = () => waitFor("a socket", () => sockets[sockets.length - 1]);
  const next = (n: number) => waitFor(`socket ${n}`, () => sockets[n - 1]);
  return { client, sockets, socket, next };
}

test("offers wsgate.v1, sends resume before anything queued, and resumes after the last seq on reconnect", async () => {
  const { client, next } = fake({ token: () => "tok en" });
  client.send("queued while connecting");
  const s1 = await next(1);
  expect(s1.protocols).toEqual(["wsgate.v1"]);
  expect(s1.url).toBe("ws://gateway.test/ws?access_token=tok+en");
  s1.open();
  expect(s1.sent).toEqual([{ type: "resume" }, { type: "message", data: "queued while connecting" }]);
  expect(client.state).toBe("open");
  const got: [unknown, number | undefined][] = [];
  client.onMessage((d, i) => got.push([d, i.seq]));
  s1.frame({ type: "message", data: "a", seq: 5 });
  s1.frame({ type: "message", data: "b", seq: 6 });
  s1.frame({ type: "message", data: "b again", seq: 6 });
  s1.frame({ type: "message", data: "AP8=", encoding: "base64", seq: 7 });
  s1.frame({ type: "message", data: "no mailbox" });
  expect(got).toEqual([
    ["a", 5],
    ["b", 6],
    [new Uint8Array([0, 255]), 7],
    ["no mailbox", undefined],
  ]);
  s1.drop(1006);
  expect(client.state).toBe("reconnecting");
  const s2 = await next(2);
  s2.open();
  expect(s2.sent[0]).toEqual({ type: "resume", after: 7 });
  s2.frame({ type: "message", data: "old", seq: 7 });
  s2.frame({ type: "message", data: "new", seq: 8 });
  expect(got.slice(4)).toEqual([["new", 8]]);
  expect(client.lastSeq).toBe(8);
});

test("close codes decide reconnecting by number: 4100-4199 are terminal, everything else comes back", () => {
  // Every gateway code of its own sits in the range that states its decision.
  for (const c of Object.values(CLOSE)) if (c.code >= 4000) expect(c.code <= 4099 || (c.code >= 4100 && c.code <= 4199)).toBe(true);
  expect(shouldReconnect(CLOSE.USER_FULL.code)).toBe(false);
  expect(shouldReconnect(CLOSE.DISCONNECTED_TERMINAL.code)).toBe(false);
  expect(shouldReconnect(4199)).toBe(false);
  expect(shouldReconnect(CLOSE.RATE_LIMITED.code)).toBe(true);
  expect(shouldReconnect(CLOSE.DISCONNECTED_RECONNECT.code)).toBe(true);
  expect(shouldReconnect(4099)).toBe(true);
  // Codes the gateway never sends: a dropped connection, a proxy, a normal close it did not ask for.
  for (const code of [1000, 1005, 1006, 1008, 4200]) expect(shouldReconnect(code)).toBe(true);
});

test("a terminal close code ends the client whatever its reason text; a draining node is left for another at once", async () => {
  const a = fake();
  const infos: any[] = [];
  a.client.on("close", (i) => infos.push(i));
  (await a.next(1)).open();
  (await a.next(1)).drop(CLOSE.GOING_AWAY.code, CLOSE.GOING_AWAY.reason);
  expect(infos[0]).toMatchObject({ code: 1001, reconnect: true });
  expect(infos[0].delayMs).toBeLessThan(10);
  const s2 = await a.next(2);
  s2.open();
  s2.drop(CLOSE.USER_FULL.code, "a reason text the client has never seen");
  expect(a.client.state).toBe("closed");
  expect(infos[1]).toMatchObject({ code: 4100, reconnect: false });
  expect(a.client.lastClose).toEqual({ code: 4100, reason: "a reason text the client has never seen" });
  // A reconnect would be a timer of at most the backoff ceiling (40 ms) set at the close;
  // timers fire in deadline order, so it would have run before this one.
  await Bun.sleep(60);
  expect(a.sockets.length).toBe(2);
});

test("backoff is full jitter: each wait is random below a doubling ceiling, capped", async () => {
  const { client, sockets, next } = fake({ backoff: { initialMs: 4, maxMs: 16 }, maxAttempts: 6 });
  const delays: number[] = [];
  const states: string[] = [];
  client.on("state", (s) => states.push(s));
  client.on("close", (i) => i.reconnect && delays.push(i.delayMs));
  for (let n = 1; n <= 7; n++) (await next(n)).drop(1006);
  expect(client.state).toBe("closed");
  expect(sockets.length).toBe(7);
  expect(delays.length).toBe(6);
  const ceilings = [4, 8, 16, 16, 16, 16];
  delays.forEach((d, i) => expect(d).toBeLessThan(ceilings[i]));
  expect(states[0]).toBe("reconnecting");
  expect(states[states.length - 1]).toBe("closed");
});

test("requests: answered by id, refused by code, failed on a drop; service requests answered by the handler", async () => {
  const { client, next } = fake();
  const s = await next(1);
  s.open();
  const ok = client.request("echo", "hi", { timeout: 1_000 });
  const bad = client.request("echo", new Uint8Array([1]), { timeout: 1_000 });
  const [r1, r2] = s.sent.slice(1);
  expect(r1).toMatchObject({ type: "request", method: "echo", data: "hi", timeout: 1_000 });
  expect(r2).toMatchObject({ type: "request", data: "AQ==", encoding: "base64" });
  s.frame({ type: "reply", id: r1.id, data: "hello" });
  s.frame({ type: "error", id: r2.id, code: "no_responders", message: "nobody" });
  expect(await ok).toBe("hello");
  expect(await bad.catch((e) => e.code)).toBe("no_responders");

  const quick = await client.request("slow", "x", { timeout: 20 }).catch((e) => e.code);
  expect(quick).toBe("timeout");

  client.onRequest(async (data) => {
    if (data === "fail") throw Object.assign(new Error("nope"), { code: "denied" });
    return `re:${data}`;
  });
  s.frame({ type: "request", id: "g1", data: "q" });
  s.frame({ type: "request", id: "g2", data: "fail" });
  await waitFor("two answers", () => s.sent.filter((f) => f.id === "g1" || f.id === "g2").length === 2);
  expect(s.sent.find((f) => f.id === "g1")).toEqual({ type: "reply", id: "g1", data: "re:q" });
  expect(s.sent.find((f) => f.id === "g2")).toEqual({ type: "error", id: "g2", code: "denied", message: "nope" });

  const lost = client.request("echo", "x", { timeout: 1_000 });
  s.drop(1006);
  expect(await lost.catch((e) => e.code)).toBe("disconnected");
  client.close();
  expect(await client.request("echo", "x").catch((e) => e.code)).toBe("closed");
});

test("refuses a server that did not select wsgate.v1", async () => {
  const { next } = fake();
  const s = await next(1);
  s.open("");
  expect(s.sent).toEqual([]);
  expect(s.readyState).toBe(3);
});
