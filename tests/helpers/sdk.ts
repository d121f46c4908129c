// The SDK as the tests use it: Bun's WebSocket, with the development-mode identity cookies
// (Bun lets a client set headers on a WebSocket; browsers send their cookies themselves).
import { type ClientOptions, connect, type Data, type WsgateClient } from "../../sdk/client.ts";
import { cookie } from "./clients.ts";
import { waitFor } from "./procs.ts";

export type Recorded = { client: WsgateClient; messages: { data: Data; seq?: number }[]; opens: number };

export function sdkClient(url: string, svc: string, user: string, options: ClientOptions = {}): Recorded {
  const client = connect(url, {
    createWebSocket: (u, protocols) => new WebSocket(u, { protocols, headers: { Cookie: cookie(svc, user) } } as unknown as string[]),
    backoff: { initialMs: 50, maxMs: 500 },
    ...options,
  });
  const rec: Recorded = { client, messages: [], opens: 0 };
  client.onMessage((data, info) => rec.messages.push({ data, seq: info.seq }));
  client.on("open", () => rec.opens++);
  return rec;
}

/** Waits until the gateway's NATS connection holds (or no longer holds) a subscription. */
export async function waitForSub(subsOf: () => Promise<string[]>, subject: string, present = true) {
  await waitFor(`${subject} ${present ? "subscribed" : "unsubscribed"}`, async () => (await subsOf()).includes(subject) === present);
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
