// uWebSockets.js topics as the groups module's fan-out: `ws.subscribe` per socket and one
// `app.publish` per group message, written to every subscriber in C++.
import type { TemplatedApp, WebSocket } from "@btc-vision/uwebsockets.js";
import type { Topics } from "../../app/core/transport.ts";
import type { Data } from "./transport.ts";

export type TopicSocket = Pick<WebSocket<Data>, "subscribe" | "unsubscribe">;

export class UwsTopics implements Topics<TopicSocket | null> {
  private app: Pick<TemplatedApp, "publish"> | null = null;

  /** The listener hands over its app once made; nothing is published before a socket joined. */
  serving(app: Pick<TemplatedApp, "publish">) {
    this.app = app;
  }

  join(ws: TopicSocket | null, topic: string) {
    ws?.subscribe(topic);
  }

  leave(ws: TopicSocket | null, topic: string) {
    if (ws === null) return; // closed: uWS dropped its subscriptions with it
    try {
      ws.unsubscribe(topic);
    } catch {
      // closing: uWS drops its subscriptions anyway
    }
  }

  publishLocal(topic: string, data: Uint8Array | string, text: boolean) {
    this.app?.publish(topic, data, !text);
  }
}
