// The Deno adapter's transport mapping, against a stand-in for Deno's WebSocket.
import { describe, expect, test } from "bun:test";
import { abortDenoSocket, type DenoSocket, denoTransport } from "../../adapters/deno/transport.ts";

function fakeSocket(readyState: number, bufferedAmount = 0, closeThrows = false) {
  const calls: string[] = [];
  const ws = {
    readyState,
    bufferedAmount,
    send: (d: string | Uint8Array) => void calls.push(`send ${typeof d}`),
    close(code?: number, reason?: string) {
      calls.push(`close ${code} ${reason}`);
      if (closeThrows) throw new Error("already closed");
    },
  } as unknown as DenoSocket;
  return { ws, calls };
}

describe("deno transport", () => {
  test("a send on an open socket is sent, and reported as queued once unsent data passes the limit", () => {
    const t = denoTransport(1000, () => true);
    const open = fakeSocket(WebSocket.OPEN, 10);
    expect(t.send(open.ws, "hi", true)).toBe(1);
    const behind = fakeSocket(WebSocket.OPEN, 5000);
    expect(t.send(behind.ws, new Uint8Array(2), false)).toBe(-1);
    expect([...open.calls, ...behind.calls]).toEqual(["send string", "send object"]);
  });

  test("a send on a closing or closed socket is a drop, not a silent success", () => {
    const t = denoTransport(1000, () => true);
    for (const state of [WebSocket.CLOSING, WebSocket.CLOSED]) {
      const { ws, calls } = fakeSocket(state);
      expect(t.send(ws, "late", true)).toBe(0);
      expect(calls).toEqual([]);
    }
  });

  test("close is sent once: not on a closing socket, and a peer that closed meanwhile throws nothing", () => {
    const t = denoTransport(1000, () => true);
    const closing = fakeSocket(WebSocket.CLOSING);
    t.close(closing.ws, 1001, "node draining");
    expect(closing.calls).toEqual([]);
    const racing = fakeSocket(WebSocket.OPEN, 0, true);
    expect(() => t.close(racing.ws, 1001, "node draining")).not.toThrow();
  });

  test("terminate drops the socket, or closes it when the runtime offers no way to drop it", () => {
    const dropped: DenoSocket[] = [];
    const { ws, calls } = fakeSocket(WebSocket.OPEN);
    denoTransport(1000, (s) => (dropped.push(s), true)).terminate!(ws);
    expect(dropped).toEqual([ws]);
    expect(calls).toEqual([]);
    denoTransport(1000, () => false).terminate!(ws);
    expect(calls).toEqual(["close 1008 closing"]);
  });

  test("outside Deno there is no internal handle to drop a socket with", () => {
    expect(abortDenoSocket(fakeSocket(WebSocket.OPEN).ws)).toBe(false);
  });
});
