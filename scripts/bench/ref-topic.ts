// Reference for the groups benchmark: bare Bun.serve whose sockets all subscribe to native
// topics, and a publish route calling server.publish once. What the gateway's group fan-out
// is measured against (same runtime, same native call, nothing else).
//
//   GET  /ws                     upgrade; the socket subscribes to topic t0
//   POST /subscribe?topics=K     every open socket also subscribes to t1..t(K-1) (memory per subscription)
//   POST /publish                body = payload, published to t0 as a text frame
//   GET  /readyz, /metrics       wsgate_connections, wsgate_group_deliveries_total
// Env: PORT, HOST (default 127.0.0.1).
import type { ServerWebSocket } from "bun";

const sockets = new Set<ServerWebSocket<undefined>>();
let deliveries = 0;

const server = Bun.serve<undefined>({
  port: Number(process.env.PORT ?? 0),
  hostname: process.env.HOST ?? "127.0.0.1",
  async fetch(req, srv) {
    const url = new URL(req.url);
    switch (url.pathname) {
      case "/ws":
        return srv.upgrade(req, { data: undefined }) ? undefined : new Response("upgrade failed\n", { status: 400 });
      case "/publish": {
        const text = await req.text();
        srv.publish("t0", text);
        deliveries += srv.subscriberCount("t0");
        return new Response(null, { status: 202 });
      }
      case "/subscribe": {
        const k = Math.min(1000, Number(url.searchParams.get("topics") ?? 1));
        for (const ws of sockets) for (let i = 1; i < k; i++) ws.subscribe(`t${i}`);
        return new Response(`${sockets.size}\n`);
      }
      case "/healthz":
      case "/readyz":
        return new Response("ok\n");
      case "/metrics":
        return new Response(`wsgate_connections ${sockets.size}\nwsgate_group_deliveries_total ${deliveries}\n`);
    }
    return new Response("not found\n", { status: 404 });
  },
  websocket: {
    idleTimeout: 120,
    open(ws) {
      sockets.add(ws);
      ws.subscribe("t0");
    },
    message() {},
    close(ws) {
      sockets.delete(ws);
    },
  },
});

console.log(JSON.stringify({ msg: "ref-topic listening", port: server.port }));
const bye = () => {
  server.stop(true);
  process.exit(0);
};
process.on("SIGTERM", bye);
process.on("SIGINT", bye);
