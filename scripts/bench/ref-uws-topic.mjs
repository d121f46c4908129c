// Reference for the groups benchmark on Node: a bare uWebSockets.js server whose sockets all
// subscribe to native topics, and a publish route calling app.publish once (the same surface
// as ref-topic.ts: /ws, POST /publish, POST /subscribe?topics=K, /readyz, /metrics).
// Started as `node scripts/bench/ref-uws-topic.mjs` (NODE_OPTIONS adds the GC hook). Env: PORT, HOST.
// The same uWS builds as the gateway's Node adapter (adapters/node/uws.ts): the current one, else the older.
import { createRequire } from "node:module";

let uWS;
try {
  uWS = createRequire(import.meta.url)("@btc-vision/uwebsockets.js");
} catch {
  uWS = await import("uws-pack");
}

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? "127.0.0.1";
const sockets = new Set();
let deliveries = 0;
let listenSocket = null;

const app = uWS.App();
app.ws("/ws", {
  idleTimeout: 120,
  maxPayloadLength: 64 * 1024,
  upgrade(res, req, context) {
    res.upgrade({}, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), context);
  },
  open(ws) {
    sockets.add(ws);
    ws.subscribe("t0");
  },
  message() {},
  close(ws) {
    sockets.delete(ws);
  },
});

/** Reads a whole request body (uWS hands it over in chunks). */
function body(res, done) {
  const parts = [];
  res.onAborted(() => {});
  res.onData((chunk, last) => {
    parts.push(Buffer.from(chunk.slice(0)));
    if (last) done(Buffer.concat(parts));
  });
}

app.post("/publish", (res) =>
  body(res, (data) => {
    app.publish("t0", data, false);
    deliveries += app.numSubscribers("t0");
    res.writeStatus("202 Accepted").end();
  }),
);
app.post("/subscribe", (res, req) => {
  const k = Math.min(1000, Number(new URLSearchParams(req.getQuery() ?? "").get("topics") ?? 1));
  for (const ws of sockets) for (let i = 1; i < k; i++) ws.subscribe(`t${i}`);
  res.end(`${sockets.size}\n`);
});
app.get("/readyz", (res) => res.end("ok\n"));
app.get("/healthz", (res) => res.end("ok\n"));
app.get("/metrics", (res) => res.end(`wsgate_connections ${sockets.size}\nwsgate_group_deliveries_total ${deliveries}\n`));
app.any("/*", (res) => res.writeStatus("404 Not Found").end("not found\n"));
app.listen(host, port, (s) => {
  if (!s) {
    console.error(`ref-uws-topic: cannot listen on ${host}:${port}`);
    process.exit(1);
  }
  listenSocket = s;
  console.log(JSON.stringify({ msg: "ref-uws-topic listening", port }));
});

const bye = () => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  process.exit(0);
};
process.on("SIGTERM", bye);
process.on("SIGINT", bye);
