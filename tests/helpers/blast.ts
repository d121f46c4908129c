// Run as its own process by the abuse tests: publishes `total` bytes to one subject
// in `size`-byte messages as fast as NATS takes them, flushing every 64 so the
// publisher's own buffer stays small. Prints the bytes sent as its last line.
import { connect } from "@nats-io/transport-node";

const [url, subject, totalArg, sizeArg] = process.argv.slice(2);
const total = Number(totalArg);
const size = Number(sizeArg);
const nc = await connect({ servers: url });
const payload = new Uint8Array(size).fill(0x61); // valid UTF-8: goes out as text frames
let sent = 0;
for (let i = 0; sent < total; i++) {
  nc.publish(subject, payload);
  sent += size;
  if (i % 64 === 63) await nc.flush();
}
await nc.flush();
await nc.close();
console.log(sent);
