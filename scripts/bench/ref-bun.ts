// Reference servers the benchmarks compare the gateway against, measured in the same run.
//
//   REF_MODE=idle   bare Bun.serve native WebSockets: upgrades /ws and only holds sockets
//   REF_MODE=nats   the same plus the naive fan-out: on a user's first socket, one plain
//                   nats.js subscription on <prefix>.recv.<svc>.<user> whose callback sends
//                   each message to that user's sockets (binary frame, no checks); and the
//                   naive inbound path: each client frame is published as is (no headers, no
//                   limits) on <prefix>.send.<svc>.<user>
//   REF_SUBSCRIBE=live  (nats mode) subscribe to <prefix>.live.<svc>.<user> instead: the subjects a
//                   JetStream stream set up like the gateway's mailbox republishes <prefix>.recv.> on,
//                   so the reference is fed through the same nats-server storage as the gateway
//                   (the bench creates that stream; the reference only reads the payload, no headers)
//
// Env: PORT, HOST (default 127.0.0.1), NATS_URL (nats mode), REF_PREFIX (default ws),
// REF_REUSE_PORT=1 to share the port with sibling processes (SO_REUSEPORT, like WSGATE_WORKERS).
// It serves GET /readyz and GET /metrics with the gateway's metric names (wsgate_connections,
// wsgate_users, wsgate_messages_out_total, wsgate_messages_in_total) so the bench drives both alike.
import type { ServerWebSocket } from "bun";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";

const mode = process.env.REF_MODE ?? "idle";
if (mode !== "idle" && mode !== "nats") {
  console.error("ref-bun: REF_MODE must be idle or nats");
  process.exit(2);
}
const prefix = process.env.REF_PREFIX ?? "ws";
const deliverKind = process.env.REF_SUBSCRIBE ?? "recv";
if (deliverKind !== "recv" && deliverKind !== "live") {
  console.error("ref-bun: REF_SUBSCRIBE must be recv or live");
  process.exit(2);
}
const port = Number(process.env.PORT ?? 0);
const hostname = process.env.HOST ?? "127.0.0.1";

let nc: NatsConnection | null = null;
if (mode === "nats") {
  if (!process.env.NATS_URL) {
    console.error("ref-bun: REF_MODE=nats needs NATS_URL");
    process.exit(2);
  }
  nc = await connect({ servers: process.env.NATS_URL.split(","), name: "ref-bun" });
}

type Data = { subject: string; send: string } | undefined;
type User = { sub: Subscription; socks: ServerWebSocket<Data>[] };
const users = new Map<string, User>();
let connections = 0;
let messagesOut = 0;
let messagesIn = 0;

const SVC = /(?:^|;\s*)service=([A-Za-z0-9_-]{1,64})(?:;|$)/;
const USER = /(?:^|;\s*)user=([A-Za-z0-9_-]{1,64})(?:;|$)/;

const server = Bun.serve<Data>({
  port,
  hostname,
  reusePort: process.env.REF_REUSE_PORT === "1",
  fetch(req, srv) {
    const path = new URL(req.url).pathname;
    if (path === "/ws") {
      if (mode === "idle") return srv.upgrade(req, { data: undefined }) ? undefined : new Response("upgrade failed\n", { status: 400 });
      const cookie = req.headers.get("cookie") ?? "";
      const svc = SVC.exec(cookie)?.[1];
      const user = USER.exec(cookie)?.[1];
      if (!svc || !user) return new Response("service and user cookies required\n", { status: 401 });
      return srv.upgrade(req, { data: { subject: `${prefix}.${deliverKind}.${svc}.${user}`, send: `${prefix}.send.${svc}.${user}` } })
        ? undefined
        : new Response("upgrade failed\n", { status: 400 });
    }
    if (path === "/healthz" || path === "/readyz") return new Response("ok\n");
    if (path === "/metrics") {
      return new Response(
        `wsgate_connections ${connections}\nwsgate_users ${users.size}\nwsgate_messages_out_total ${messagesOut}\nwsgate_messages_in_total ${messagesIn}\n`,
      );
    }
    return new Response("not found\n", { status: 404 });
  },
  websocket: {
    idleTimeout: 120,
    open(ws) {
      connections++;
      const d = ws.data;
      if (!d) return;
      let u = users.get(d.subject);
      if (!u) {
        const socks: ServerWebSocket<Data>[] = [];
        const sub = nc!.subscribe(d.subject, {
          callback: (_err, msg) => {
            for (const s of socks) {
              s.send(msg.data);
              messagesOut++;
            }
          },
        });
        u = { sub, socks };
        users.set(d.subject, u);
      }
      u.socks.push(ws);
    },
    message(ws, message) {
      messagesIn++;
      const d = ws.data;
      if (d) nc!.publish(d.send, message);
    },
    close(ws) {
      connections--;
      const d = ws.data;
      if (!d) return;
      const u = users.get(d.subject);
      if (!u) return;
      const i = u.socks.indexOf(ws);
      if (i >= 0) u.socks.splice(i, 1);
      if (u.socks.length === 0) {
        u.sub.unsubscribe();
        users.delete(d.subject);
      }
    },
  },
});

console.log(JSON.stringify({ msg: "ref-bun listening", mode, subscribe: deliverKind, port: server.port }));
const bye = () => {
  server.stop(true);
  process.exit(0);
};
process.on("SIGTERM", bye);
process.on("SIGINT", bye);
