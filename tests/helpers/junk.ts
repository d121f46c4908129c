// Run as its own process by the abuse test: opens `count` connections to the gateway in
// batches of 100, each one of four kinds of junk (silent, slowloris, TLS bytes on a plain
// port, an upgrade that never answers a ping), prints how many are open, and holds them
// until it is killed. In its own process, the attack's work never stalls the test process
// that measures the reference user's latency.
import { upgradeRequest } from "./clients.ts";

const [portArg, countArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const kinds = [
  () => "", // connects and says nothing
  () => "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nX-Slow: ", // slowloris: headers never end
  () => "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\xff".repeat(200), // TLS hello and junk on a plain port
  (i: number) => upgradeRequest({ Cookie: `service=abuse; user=halfopen-${i}` }), // upgrades, then never answers a ping
];
let open = 0;
for (let batch = 0; batch * 100 < count; batch++) {
  await Promise.all(
    Array.from({ length: Math.min(100, count - batch * 100) }, async (_, j) => {
      const i = batch * 100 + j;
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {}, close() {} } });
      const bytes = kinds[i % 4](i);
      if (bytes) s.write(bytes);
      open++;
    }),
  );
}
console.log(open);
// Held until the test kills this process; the parent's exit ends it too.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1_000);
