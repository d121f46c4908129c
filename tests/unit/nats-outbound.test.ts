// The client frames and users' SUB/UNSUB batched by app/broker/nats-publish.ts, and nats.js's
// own commands deferred by flushAfterEvents, must reach the server in the order they were
// asked for (a user's SUB before the mailbox's read of that user's backlog), in one socket
// write per turn of the event loop. Checked against a stand-in for nats.js's protocol handler.
import { expect, test } from "bun:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { flushAfterEvents, rawSink } from "../../app/broker/nats-internals.ts";
import { OutboundBatch } from "../../app/broker/nats-publish.ts";

function fakeClient() {
  const queued: Uint8Array[] = [];
  const writes: string[] = [];
  const protocol = {
    outMsgs: 0,
    outBytes: 0,
    pendingLimit: 32 * 1024,
    outbound: {
      fill: (a: Uint8Array, ...more: Uint8Array[]) => void queued.push(a, ...more),
      size: () => queued.reduce((n, b) => n + b.length, 0),
    },
    flushPending() {
      if (queued.length) writes.push(queued.splice(0).map((b) => new TextDecoder().decode(b)).join(""));
    },
    // nats.js's own: queue and flush at the next microtask (replaced by flushAfterEvents)
    sendCommand(cmd: string | Uint8Array) {
      protocol.outbound.fill(typeof cmd === "string" ? new TextEncoder().encode(cmd) : cmd);
      queueMicrotask(() => protocol.flushPending());
    },
  };
  const nc = { protocol, isClosed: () => false } as unknown as NatsConnection;
  const turns: (() => void)[] = [];
  const later = (fn: () => void) => void turns.push(fn);
  const endTurn = () => turns.splice(0).forEach((fn) => fn());
  return { nc, protocol, writes, later, endTurn };
}

test("batched SUBs, frames and the client's own commands reach the socket in call order, in one write per turn", () => {
  const { nc, protocol, writes, later, endTurn } = fakeClient();
  const raw = rawSink(nc)!;
  const batch = new OutboundBatch((c, m, w) => raw.send(c, m, w), later, () => 1024 * 1024);
  expect(flushAfterEvents(nc, later, () => batch.move())).toBe(true);
  batch.sub("ws.live.s1.u1", 7, undefined);
  protocol.sendCommand("PUB $JS.API.DIRECT.GET.WSGATE_CURSORS _INBOX.x 2\r\n{}\r\n"); // the mailbox's cursor read
  batch.frame("ws.send.s1.u1", "hi", "n1", 3, false);
  batch.unsub(7);
  batch.sub("ws.req.s1.u1", 8, "wsgate");
  expect(writes).toEqual([]); // nothing before the turn's socket events are handled
  endTurn();
  expect(writes).toEqual([
    "SUB ws.live.s1.u1 7\r\n" +
      "PUB $JS.API.DIRECT.GET.WSGATE_CURSORS _INBOX.x 2\r\n{}\r\n" +
      "HPUB ws.send.s1.u1 56 58\r\nNATS/1.0\r\nWs-Conn: n1.3\r\nWs-Node: n1\r\nWs-Frame: text\r\n\r\nhi\r\n" +
      "UNSUB 7\r\n" +
      "SUB ws.req.s1.u1 wsgate 8\r\n",
  ]);
  expect(protocol.outMsgs).toBe(1);
});

test("past nats.js's pending limit the queue is written at once, still in order", () => {
  const { nc, protocol, writes, later, endTurn } = fakeClient();
  const raw = rawSink(nc)!;
  const batch = new OutboundBatch((c, m, w) => raw.send(c, m, w), later, () => 1024 * 1024);
  flushAfterEvents(nc, later, () => batch.move());
  batch.sub("ws.live.s1.a", 1, undefined);
  protocol.sendCommand(new Uint8Array(40 * 1024).fill(120));
  expect(writes.length).toBe(1);
  expect(writes[0].startsWith("SUB ws.live.s1.a 1\r\nxxx")).toBe(true);
  endTurn();
  expect(writes.length).toBe(1);
});

test("a message without headers joins the batch as one PUB, in order with the SUBs around it, and counts as a message", () => {
  const { nc, protocol, writes, later, endTurn } = fakeClient();
  const raw = rawSink(nc)!;
  const batch = new OutboundBatch((c, m, w) => raw.send(c, m, w), later, () => 1024 * 1024);
  flushAfterEvents(nc, later, () => batch.move());
  batch.sub("ws.live.s1.u1", 7, undefined);
  batch.pub("ws.events.s1.u1", new TextEncoder().encode('{"event":"connect","reason":"é"}'));
  batch.pub("ws.events.s1.u2", '{"event":"online"}'); // an ASCII string, written as it is
  batch.pub("ws.events.s1.u2", '{"reason":"é"}'); // a string that is not ASCII: its UTF-8 length and bytes
  batch.sub("ws.live.s1.u2", 8, undefined);
  expect(writes).toEqual([]); // an event per upgrade does not write the burst's SUBs one upgrade at a time
  endTurn();
  expect(writes).toEqual([
    "SUB ws.live.s1.u1 7\r\n" +
      'PUB ws.events.s1.u1 33\r\n{"event":"connect","reason":"é"}\r\n' +
      'PUB ws.events.s1.u2 18\r\n{"event":"online"}\r\n' +
      'PUB ws.events.s1.u2 15\r\n{"reason":"é"}\r\n' +
      "SUB ws.live.s1.u2 8\r\n",
  ]);
  expect(protocol.outMsgs).toBe(3);
});

test("a message without headers over the server's max_payload is refused with its size", () => {
  const { nc, later } = fakeClient();
  const raw = rawSink(nc)!;
  const batch = new OutboundBatch((c, m, w) => raw.send(c, m, w), later, () => 16);
  expect(() => batch.pub("ws.events.s1.u1", new Uint8Array(17))).toThrow("message of 17 bytes is over the NATS server's max_payload (16)");
});
