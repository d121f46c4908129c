// Reference for the gateway on Node-uWS: a bare uWebSockets.js server on Node 20 that upgrades
// /ws and only holds sockets (no identity, no NATS, one empty object per socket), measured in
// the same run as the gateway. Started by the benchmarks as `node scripts/bench/ref-uws.mjs`
// (with NODE_OPTIONS="--expose-gc --import gc-hook-node.mjs" for the after-GC figures).
//
// REF_MODE=nats (with NATS_URL, REF_PREFIX): the naive inbound path for the inbound benchmark:
// the upgrade reads the `service` and `user` cookies, and each client frame is published as is
// (no headers, no limits) on <prefix>.send.<svc>.<user> with one nats.js connection.
//
// Env: PORT, HOST (default 127.0.0.1). GET /readyz, GET /metrics (wsgate_connections,
// wsgate_users, wsgate_messages_out_total, wsgate_messages_in_total) so the benchmarks drive it like the gateway.
// The same uWebSockets.js build the gateway loads (adapters/node/uws.ts): the current one where
// this glibc runs it, else the older uws-pack, so both sides of the comparison run the same uWS.
import { createRequire } from "node:module";

async function loadUws() {
  try {
    return createRequire(import.meta.url)("@btc-vision/uwebsockets.js");
  } catch {
    return await import("uws-pack");
  }
}
const uWS = await loadUws();

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? "127.0.0.1";
const mode = process.env.REF_MODE ?? "idle";
const prefix = process.env.REF_PREFIX ?? "ws";
let nc = null;
if (mode === "nats") {
  const { connect } = await import("@nats-io/transport-node");
  nc = await connect({ servers: (process.env.NATS_URL ?? "").split(","), name: "ref-uws" });
}
const SVC = /(?:^|;\s*)service=([A-Za-z0-9_-]{1,64})(?:;|$)/;
const USER = /(?:^|;\s*)user=([A-Za-z0-9_-]{1,64})(?:;|$)/;
let connections = 0;
let messagesIn = 0;
let listenSocket = null;

const app = uWS.App();
app.ws("/ws", {
  idleTimeout: 120,
  maxPayloadLength: 64 * 1024,
  sendPingsAutomatically: true,
  upgrade(res, req, context) {
    const cookie = req.getHeader("cookie");
    const svc = SVC.exec(cookie)?.[1];
    const user = USER.exec(cookie)?.[1];
    res.upgrade(
      nc && svc && user ? { sendSubject: `${prefix}.send.${svc}.${user}` } : {},
      req.getHeader("sec-websocket-key"),
      req.getHeader("sec-websocket-protocol"),
      req.getHeader("sec-websocket-extensions"),
      context,
    );
  },
  open() {
    connections++;
  },
  message(ws, message) {
    messagesIn++;
    const send = ws.sendSubject;
    if (nc && send) nc.publish(send, new Uint8Array(message.slice(0)));
  },
  close() {
    connections--;
  },
});
app.get("/readyz", (res) => res.end("ok\n"));
app.get("/healthz", (res) => res.end("ok\n"));
app.get("/metrics", (res) => res.end(`wsgate_connections ${connections}\nwsgate_users 0\nwsgate_messages_out_total 0\nwsgate_messages_in_total ${messagesIn}\n`));
app.any("/*", (res) => res.writeStatus("404 Not Found").end("not found\n"));
app.listen(host, port, (s) => {
  if (!s) {
    console.error(`ref-uws: cannot listen on ${host}:${port}`);
    process.exit(1);
  }
  listenSocket = s;
  console.log(JSON.stringify({ msg: "ref-uws listening", port }));
});

const bye = () => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  process.exit(0);
};
process.on("SIGTERM", bye);
process.on("SIGINT", bye);
