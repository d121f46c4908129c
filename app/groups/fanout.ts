// Local fan-out: what the groups module needs from a runtime to reach every socket of a
// group on this node with one call. Bun and uWS have native topics (`ws.subscribe`,
// `server.publish` / `app.publish`): one call, the frame is written by native code.
// A runtime without them (Deno) gets LoopTopics, a Set of sockets per topic.
//
// A native publish sends the same bytes to every subscriber, but envelope clients need a
// `message` frame naming the group and raw clients the bare payload: so each group has two
// topics, `<name>:raw` and `<name>:env`, and a socket joins the one of its kind.
import { toBase64 } from "../envelope/frames.ts";
import type { Topics } from "../core/transport.ts";

export type { Topics };

type Send<WS> = (ws: WS, data: Uint8Array | string, text: boolean) => number;

/** For runtimes without native topics: a loop over a Set, written through the transport's send. */
export class LoopTopics<WS = unknown> implements Topics<WS> {
  private sets = new Map<string, Set<WS>>();

  constructor(private readonly send: Send<WS>) {}

  join(ws: WS, topic: string) {
    let set = this.sets.get(topic);
    if (!set) this.sets.set(topic, (set = new Set()));
    set.add(ws);
  }

  leave(ws: WS, topic: string) {
    const set = this.sets.get(topic);
    if (set?.delete(ws) && set.size === 0) this.sets.delete(topic);
  }

  publishLocal(topic: string, data: Uint8Array | string, text: boolean) {
    const set = this.sets.get(topic);
    if (!set) return;
    for (const ws of set) this.send(ws, data, text);
  }

  /** sockets joined to a topic (tests, metrics) */
  size(topic: string): number {
    return this.sets.get(topic)?.size ?? 0;
  }
}

const utf8 = new TextDecoder();

/**
 * The envelope frame of a group or broadcast message. `tag` is built once per group
 * (`"group":"g"` or `"broadcast":true`), so a message costs one string for all envelope sockets.
 */
export function taggedFrame(tag: string, data: Uint8Array, text: boolean): string {
  return text
    ? `{"type":"message",${tag},"data":${JSON.stringify(utf8.decode(data))}}`
    : `{"type":"message",${tag},"data":"${toBase64(data)}","encoding":"base64"}`;
}

export const groupTag = (group: string) => `"group":"${group}"`; // ids need no JSON escaping
export const BROADCAST_TAG = `"broadcast":true`;
