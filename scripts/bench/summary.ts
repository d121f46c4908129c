// The one table `npm run bench` ends with: each headline figure of the gateway next to the
// reference measured in the same run, and their ratio. Reads the shapes the benchmarks return
// (results.json); a benchmark that did not run (or failed) leaves its rows out.
import { fmt, table } from "./lib.ts";

type Row = [string, string, number, string, number, string];

export function summaryRows(r: any): Row[] {
  const rows: Row[] = [];
  const add = (bench: string, figure: string, gw: unknown, refName: string, ref: unknown, unit = "") => {
    const a = Number(gw), b = Number(ref);
    if (!Number.isFinite(a) && !Number.isFinite(b)) return;
    rows.push([bench, figure, a, refName, b, unit]);
  };
  const m = r.memory;
  if (m?.wsgate) {
    add("idle memory, Bun, 10k", "B/conn after GC", m.wsgate.bytesPerConnAfterGc, "bare Bun.serve", m["ref-bun"]?.bytesPerConnAfterGc);
    add("idle memory, Bun, 10k", "B/conn after GC, mailbox off", m["wsgate-nomb"]?.bytesPerConnAfterGc, "bare Bun.serve", m["ref-bun"]?.bytesPerConnAfterGc);
  }
  const n = r["node-memory"];
  if (n?.["wsgate-node"]) {
    add("idle memory, Node-uWS", "B/conn after GC", n["wsgate-node"].bytesPerConnAfterGc, "bare uWS.js", n["ref-uws"]?.bytesPerConnAfterGc);
    add("idle memory, Node-uWS", "B/conn settled", n["wsgate-node"].bytesPerConnSettled, "bare uWS.js", n["ref-uws"]?.bytesPerConnSettled);
  }
  const f = r.fanout;
  if (f?.wsgate) {
    add("fan-out NATS → 10k", "max deliveries/s", f.wsgate.maxDeliveriesPerS, "Bun.serve + nats.js", f["ref-bun-nats"]?.maxDeliveriesPerS);
    add("fan-out NATS → 10k", `p99 ms @ ${fmt(f.latencyRate)}/s`, f.wsgate.latencyMs?.p99, "Bun.serve + nats.js", f["ref-bun-nats"]?.latencyMs?.p99);
    if (f["ref-bun-js"]) {
      add("fan-out NATS → 10k", "max deliveries/s", f.wsgate.maxDeliveriesPerS, "the same ref fed through JetStream", f["ref-bun-js"].maxDeliveriesPerS);
      add("fan-out NATS → 10k", `p99 ms @ ${fmt(f.latencyRate)}/s`, f.wsgate.latencyMs?.p99, "the same ref fed through JetStream", f["ref-bun-js"].latencyMs?.p99);
    }
    if (f["wsgate-r3"]) {
      add("fan-out NATS → 10k, 3 servers R3", "max deliveries/s", f["wsgate-r3"].maxDeliveriesPerS, "1 server", f.wsgate.maxDeliveriesPerS);
      add("fan-out NATS → 10k, 3 servers R3", `p99 ms @ ${fmt(f["wsgate-r3"].latencyRate)}/s`, f["wsgate-r3"].latencyMs?.p99, "1 server", f.wsgate.latencyMs?.p99);
    }
  }
  const st = r["mailbox-steady"];
  if (st?.mailbox) {
    add("steady cost, 19k users", "gateway B/user after GC", st.mailbox.gatewayBytesPerUserAfterGc, "mailbox off", st.nomailbox?.gatewayBytesPerUserAfterGc);
    add("steady cost, 19k users", "nats-server B/user", st.mailbox.natsBytesPerUser, "mailbox off", st.nomailbox?.natsBytesPerUser);
  }
  const s = r["mailbox-storm"];
  if (s?.mailbox) {
    const u = fmt(s.mailbox.users);
    add(`mailbox storm, ${u} × ${s.mailbox.expected / s.mailbox.users}`, "all delivered ms (off: all connected)", s.mailbox.allDeliveredMs, "mailbox off", s.nomailbox?.allOpenMs);
    add(`mailbox storm, ${u} × ${s.mailbox.expected / s.mailbox.users}`, "per-user p99 ms (off: handshake)", s.mailbox.catchupMs?.p99, "mailbox off", s.nomailbox?.handshakeMs?.p99);
    add(`mailbox storm, ${u} × ${s.mailbox.expected / s.mailbox.users}`, "nats-server CPU s", s.mailbox.nats?.cpuS, "mailbox off", s.nomailbox?.nats?.cpuS);
    add(`mailbox storm, ${u} × ${s.mailbox.expected / s.mailbox.users}`, "gateway CPU s", s.mailbox.gw?.cpuS, "mailbox off", s.nomailbox?.gw?.cpuS);
    const r3 = s["mailbox-r3"];
    if (r3) {
      add(`mailbox storm, ${u} × ${s.mailbox.expected / s.mailbox.users}, 3 servers R3`, "all delivered ms", r3.allDeliveredMs, "1 server", s.mailbox.allDeliveredMs);
      add(`mailbox storm, ${u} × ${s.mailbox.expected / s.mailbox.users}, 3 servers R3`, "nats-server CPU s (3 summed)", r3.nats?.cpuS, "1 server", s.mailbox.nats?.cpuS);
    }
  }
  const se = r.setup;
  if (se?.wsgate) {
    add("connection setup, 10k", "upgrades/s", se.wsgate.upgradesPerS, "bare Bun.serve", se["ref-bun"]?.upgradesPerS);
    add("connection setup, 10k", "server CPU µs/upgrade", se.wsgate.cpuUsPerUpgrade, "bare Bun.serve", se["ref-bun"]?.cpuUsPerUpgrade);
    add("reconnect storm, 10k", "all back ms", se.wsgate.stormAllBackMs, "bare Bun.serve", se["ref-bun"]?.stormAllBackMs);
  }
  const ib = r.inbound;
  if (ib?.wsgate) {
    add("inbound 1k clients → NATS", "max msg/s", ib.wsgate.maxPerS, "Bun.serve + publish", ib["ref-bun-pub"]?.maxPerS);
    add("inbound 1k clients → NATS", `p99 ms @ ${fmt(ib.latencyRate)}/s`, ib.wsgate.latencyMs?.p99, "Bun.serve + publish", ib["ref-bun-pub"]?.latencyMs?.p99);
  }
  const fo = r.failover;
  const lead = fo?.r3?.kills?.find((k: any) => k.what === "stream leader");
  if (lead) add("NATS server loss, 3 servers R3", "delivery pause p99 ms, leader killed", lead.pause.p99, "stream leaderless ms", lead.leaderlessMs);
  const conn = fo?.r3?.kills?.find((k: any) => k.what !== "stream leader");
  if (conn) add("NATS server loss, 3 servers R3", "delivery pause p99 ms, gateway's server killed", conn.pause.p99, "stream leaderless ms", conn.leaderlessMs);
  if (fo?.r3 && fo?.r1) add("JetStream store rate", "stored/s, 3 servers R3", fo.r3.storeRate, "1 server", fo.r1.storeRate);
  const w = r.workers;
  if (w?.wsgate) add(`workers, ${fmt(w.wsgate.open)} conns / ${w.wsgate.processes} procs`, "total B/conn after GC", w.wsgate.bytesPerConnAfterGc, "bare Bun.serve × N", w["ref-bun"]?.bytesPerConnAfterGc);
  return rows;
}

export function printSummary(results: any) {
  const rows = summaryRows(results);
  if (rows.length === 0) return;
  const digits = (x: number) => (Math.abs(x) < 100 && !Number.isInteger(x) ? 2 : 0);
  console.log(
    `\nSummary (wsgate ${results.gitHead}, Bun ${results.bun}; each figure next to its reference from the same run)\n` +
      table(
        ["benchmark", "figure", "wsgate", "reference", "ref", "wsgate / ref"],
        rows.map(([b, fig, gw, refName, ref]) => [b, fig, fmt(gw, digits(gw)), refName, fmt(ref, digits(ref)), Number.isFinite(gw / ref) ? `${fmt(gw / ref, 2)}×` : "-"]),
        [0, 1, 3],
      ) +
      "\n",
  );
}

if (import.meta.main) {
  // bun scripts/bench/summary.ts .tmp/bench/<time>/results.json: the table again from a saved run
  const file = Bun.argv[2];
  if (!file) {
    console.error("usage: bun scripts/bench/summary.ts <results.json>");
    process.exit(2);
  }
  printSummary(await Bun.file(file).json());
}
