// Bun's native topics as the groups module's fan-out: `ws.subscribe` per socket and one
// `server.publish` per group message, written to every subscriber by Bun's native code.
import type { Server, ServerWebSocket } from "bun";
import type { Conn } from "../../app/startup.ts";
import type { Topics } from "../../app/core/transport.ts";

export type TopicSocket = Pick<ServerWebSocket<Conn>, "subscribe" | "unsubscribe">;
type Publisher = Pick<Server<Conn>, "publish" | "pendingWebSockets">;

export class BunTopics implements Topics<TopicSocket> {
  /**
   * Topics belong to a server: the accept guard replaces a paused server with a new one and
   * the old one keeps its open sockets, so a publish goes to every server still holding any.
   */
  private servers: Publisher[] = [];

  /** The listener hands over each server it makes. */
  serving(server: Publisher) {
    this.servers = this.servers.filter((s) => s.pendingWebSockets > 0);
    this.servers.push(server);
  }

  join(ws: TopicSocket, topic: string) {
    ws.subscribe(topic);
  }

  leave(ws: TopicSocket, topic: string) {
    ws.unsubscribe(topic); // a no-op on a closed socket
  }

  publishLocal(topic: string, data: Uint8Array | string) {
    // A string goes out as a text frame, bytes as binary: the groups module chose already.
    for (const s of this.servers) s.publish(topic, data);
  }
}
