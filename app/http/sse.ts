// A live Server-Sent Events stream fed by a tap on the embedded broker: what arrives between
// two writes waits in a queue, and the tap is removed when the reader goes away.
import type { Context, Env } from "hono";
import { streamSSE } from "hono/streaming";

/** Starts listening (calling `push` with one event's data each time), and returns how to stop. */
export type Tap = (push: (data: string) => void) => () => void;

/** A `ready` event first, then one event per pushed string, named by `eventOf`. */
export function tapStream<E extends Env>(c: Context<E>, tap: Tap, eventOf: (data: string) => string): Response {
  return streamSSE(c, async (stream) => {
    const queue: string[] = [];
    let wake: (() => void) | null = null;
    const untap = tap((data) => {
      queue.push(data);
      wake?.();
    });
    stream.onAbort(() => {
      untap();
      wake?.();
    });
    await stream.writeSSE({ event: "ready", data: "{}" });
    while (!stream.aborted && !stream.closed) {
      while (queue.length) {
        const data = queue.shift()!;
        await stream.writeSSE({ event: eventOf(data), data });
      }
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    untap();
  });
}
