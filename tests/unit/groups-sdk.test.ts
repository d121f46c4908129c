// The SDK tells a socket's rooms apart: group and broadcast messages carry their name in MessageInfo.
import { afterEach, expect, test } from "bun:test";
import { connect, type MessageInfo, type WebSocketLike, type WsgateClient } from "../../sdk/client.ts";
import { waitFor } from "../helpers/procs.ts";

class FakeSocket implements WebSocketLike {
  readyState = 0;
  protocol = "";
  binaryType = "blob";
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  send() {}
  close() {
    this.readyState = 3;
  }
}

let client: WsgateClient | null = null;
afterEach(() => client?.close());

test("sdk - group and broadcast messages name the group or the broadcast; direct ones name neither", async () => {
  let socket: FakeSocket | null = null;
  client = connect("ws://gateway.test/ws", { createWebSocket: () => (socket = new FakeSocket()) });
  const s = await waitFor("a socket", () => socket);
  s.protocol = "wsgate.v1";
  s.readyState = 1;
  s.onopen?.({});
  const got: [unknown, MessageInfo][] = [];
  client.onMessage((d, i) => got.push([d, i]));
  for (const f of [
    { type: "message", group: "room", data: "in room" },
    { type: "message", broadcast: true, data: "to all" },
    { type: "message", data: "just you" },
  ])
    s.onmessage?.({ data: JSON.stringify(f) });
  expect(got).toEqual([
    ["in room", { seq: undefined, group: "room" }],
    ["to all", { seq: undefined, broadcast: true }],
    ["just you", { seq: undefined }],
  ]);
});
