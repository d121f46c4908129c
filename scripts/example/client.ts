// Example client for the wsgate README, on the SDK (`wsgate/client`).
// Run: bun scripts/example/client.ts [--url ws://127.0.0.1:8080/ws] [--user alice] [--once]
// Development mode identifies the user with cookies (set here as a header, which Bun
// allows); in production pass a token instead: WSGATE_TOKEN=<jwt> bun scripts/example/client.ts
// --once: make each kind of exchange once, then exit (used by the tests).
import { connect, WsgateError } from "wsgate/client";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "ws://127.0.0.1:8080/ws" },
    user: { type: "string", default: "alice" },
    once: { type: "boolean", default: false },
  },
});

const token = process.env.WSGATE_TOKEN;
const client = connect(args.url, {
  token,
  createWebSocket: (url, protocols) =>
    new WebSocket(url, { protocols, headers: token ? {} : { Cookie: `service=demo; user=${args.user}` } } as unknown as string[]),
});

client.on("state", (s) => console.log(`client: ${s}`));
client.on("close", (i) => i.reconnect && console.log(`client: closed (${i.code}), reconnecting in ${i.delayMs} ms`));
client.on("error", (e) => console.log(`client: gateway error ${e.code}: ${e.message}`));

let asked = false;
let echoed = false;
client.onRequest((question) => {
  asked = true;
  console.log(`client: the service asks ${JSON.stringify(question)}`);
  return `yes, ${args.user} is here`;
});
client.onMessage((data, { seq }) => {
  if (typeof data === "string" && data.startsWith("you said:")) echoed = true;
  console.log(`client: message ${JSON.stringify(data)}${seq ? ` (seq ${seq})` : ""}`);
});

async function exchange() {
  console.log(`client: time is ${await client.request("time")}`);
  console.log(`client: 2 + 3 = ${await client.request("add", "[2, 3]")}`);
  try {
    await client.request("add", "two and three");
  } catch (err) {
    if (err instanceof WsgateError) console.log(`client: add refused: ${err.code} (${err.message})`);
  }
  client.send(`hello from ${args.user}`);
}

await client.opened();
await exchange();
if (args.once) {
  const deadline = Date.now() + 20_000;
  while (!(asked && echoed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  client.close();
  console.log(asked && echoed ? "client: done" : "client: gave up waiting");
  process.exit(asked && echoed ? 0 : 1);
}
const timer = setInterval(() => void exchange().catch((err) => console.log(`client: ${err}`)), 5_000);
process.on("SIGINT", () => {
  clearInterval(timer);
  client.close();
  process.exit(0);
});
