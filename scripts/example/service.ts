// Example service for the wsgate README: talks to its users only through NATS.
//   ws.send.demo.<user>   what users send          → logged and echoed back
//   ws.call.demo.time     a user's call            → the time
//   ws.call.demo.add      a user's call, "[a, b]"  → a + b, or a Ws-Error
//   ws.recv.demo.<user>   news for a user          → every --every ms
//   ws.req.demo.<user>    a question to a user     → every 2.5 × --every ms; fails at once when offline
// Run: bun scripts/example/service.ts [--nats nats://127.0.0.1:4222] [--user alice] [--every 2000]
import { connect, headers } from "@nats-io/transport-node";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    nats: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
    user: { type: "string", default: "alice" },
    every: { type: "string", default: "2000" },
  },
});
const every = Number(args.every);
const nc = await connect({ servers: args.nats, name: "wsgate example service" });
console.log(`service: connected to ${args.nats}`);

nc.subscribe("ws.send.demo.*", {
  callback: (_err, m) => {
    const user = m.subject.split(".")[3];
    console.log(`service: ${user} says ${JSON.stringify(m.string())}`);
    nc.publish(`ws.recv.demo.${user}`, `you said: ${m.string()}`);
  },
});

nc.subscribe("ws.call.demo.time", {
  callback: (_err, m) => {
    m.respond(new Date().toISOString());
  },
});

nc.subscribe("ws.call.demo.add", {
  callback: (_err, m) => {
    try {
      const [a, b] = JSON.parse(m.string());
      if (typeof a !== "number" || typeof b !== "number") throw new Error("expected [number, number]");
      m.respond(String(a + b));
    } catch (err) {
      // The client's request() rejects with this code and the body as its message.
      const h = headers();
      h.set("Ws-Error", "bad_input");
      m.respond(String(err instanceof Error ? err.message : err), { headers: h });
    }
  },
});

let n = 0;
const news = setInterval(() => nc.publish(`ws.recv.demo.${args.user}`, `news #${++n}`), every);

const asking = setInterval(async () => {
  const h = headers();
  h.set("Ws-Timeout-Ms", "3000"); // how long we wait; the gateway forgets the question after it
  try {
    const answer = await nc.request(`ws.req.demo.${args.user}`, "are you still there?", { timeout: 3000, headers: h });
    const failed = answer.headers?.get("Ws-Error");
    console.log(failed ? `service: ${args.user} could not answer (${failed}: ${answer.string()})` : `service: ${args.user} answered ${JSON.stringify(answer.string())}`);
  } catch (err) {
    // No envelope connection of the user on any gateway: NATS says "no responders" at once.
    console.log(`service: ${args.user} is offline (${err instanceof Error ? err.message : err})`);
  }
}, every * 2.5);

const stop = async () => {
  clearInterval(news);
  clearInterval(asking);
  await nc.drain();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
