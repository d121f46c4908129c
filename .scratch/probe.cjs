const uWS = require("@trufflesuite/uws-js-unofficial");
const app = uWS.App();
let W;
app.ws("/ws", {
  idleTimeout: 8,
  upgrade(res, req, ctx) {
    const key = req.getHeader("sec-websocket-key"), p = req.getHeader("sec-websocket-protocol"), e = req.getHeader("sec-websocket-extensions");
    res.onAborted(() => {});
    setTimeout(() => res.cork(() => res.upgrade({ conn: { id: 1 } }, key, p, e, ctx)), 10);
  },
  open(ws) { W = ws; console.log("open ownkeys", Object.keys(ws), ws.conn, ws.getUserData()); setTimeout(() => { console.log("send outside cork", ws.send(new Uint8Array([104,105]), false)); }, 50); },
  message(ws, m, b) { console.log("msg", Buffer.from(m).toString(), b); },
  close(ws, code, msg) { console.log("close", code, Buffer.from(msg).toString()); setTimeout(() => { try { ws.send("x") } catch (e) { console.log("after close:", e.message); } console.log("prop after close", ws.conn); }, 0); },
});
app.get("/sse", (res, req) => {
  res.onAborted(() => console.log("sse aborted", Date.now() - t0));
  const t0 = Date.now();
  setTimeout(() => res.cork(() => { res.writeStatus("200 OK"); res.writeHeader("content-type", "text/event-stream"); console.log("w", res.write("event: ready\n\n")); }), 5);
});
app.any("/*", (res, req) => { res.end("any " + req.getMethod() + " " + req.getUrl() + " q=" + req.getQuery()); });
app.listen("127.0.0.1", 18150, (s) => { console.log("listen", !!s, uWS.us_socket_local_port(s)); });
