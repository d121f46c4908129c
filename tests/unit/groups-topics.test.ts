// The adapters' native topics as the groups module uses them.
import { expect, test } from "bun:test";
import { BunTopics } from "../../adapters/bun/topics.ts";
import { UwsTopics } from "../../adapters/node/topics.ts";

type Published = [string, string | Uint8Array];

function fakeServer(pending: number) {
  const published: Published[] = [];
  return { published, pendingWebSockets: pending, publish: (t: string, d: string | Uint8Array) => (published.push([t, d]), 1) };
}

test("bun topics - a publish reaches every server still holding sockets (a paused accept guard leaves one behind)", () => {
  const topics = new BunTopics();
  const first = fakeServer(3);
  const second = fakeServer(0);
  topics.serving(first as never);
  topics.serving(second as never);
  topics.publishLocal("g:s.room:raw", "hi");
  expect(first.published).toEqual([["g:s.room:raw", "hi"]]);
  expect(second.published).toEqual([["g:s.room:raw", "hi"]]);
  first.pendingWebSockets = 0;
  const third = fakeServer(0);
  topics.serving(third as never); // servers with no sockets left are dropped
  topics.publishLocal("t", "x");
  expect(first.published.length).toBe(1);
  expect(third.published).toEqual([["t", "x"]]);
});

test("uws topics - text and binary map to app.publish's isBinary; a closed or closing socket's leave is harmless", () => {
  const topics = new UwsTopics();
  const calls: [string, unknown, boolean][] = [];
  topics.serving({ publish: (t: string, d: unknown, binary?: boolean) => (calls.push([t, d, binary!]), true) } as never);
  topics.publishLocal("t", "text", true);
  topics.publishLocal("t", new Uint8Array([1]), false);
  expect(calls).toEqual([
    ["t", "text", false],
    ["t", new Uint8Array([1]), true],
  ]);
  topics.leave(null, "t");
  const closing = {
    subscribe: () => true,
    unsubscribe: () => {
      throw new Error("Invalid access of closed uWS.WebSocket");
    },
  };
  expect(() => topics.leave(closing as never, "t")).not.toThrow();
});
