// wsgate on a three-server NATS cluster with the mailbox at three replicas: any one server
// may die (kill -9) while services publish, and no message is lost, repeated or reordered
// for an envelope client, and none lost or reordered for a raw one.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import WS from "ws";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { NATS_SERVER, type NatsCluster, readTemplate, renderConfig, startCluster } from "../scripts/nats-cluster.ts";
import { type Gateway, startGateway, startNats, stopNatsAndClean, waitFor } from "./helpers/procs.ts";

const SVC = "ha";
const STREAM = "WSGATE";
const R3 = { WSGATE_MAILBOX_REPLICAS: "3", WSGATE_GROUPS_REPLICAS: "3" };
const USERS = 4;
const MESSAGES = 1_000;
/** a request's bound: its own timeout plus what a loaded machine adds */
const RPC_TIMEOUT_MS = 2_000;
const RPC_SLACK_MS = 2_000;

type Got = { data: string; seq: number; at: number };
type Sock = { got: Got[]; ws: WS; closed: Promise<void> };

/** A client that stamps each message's arrival; an envelope one also answers requests with their own data. */
function open(url: string, user: string, envelope: boolean, after?: number): Promise<Sock> {
  return new Promise((resolve, reject) => {
    const headers = { Cookie: `service=${SVC}; user=${user}` };
    const ws = envelope ? new WS(url, "wsgate.v1", { headers }) : new WS(url, { headers });
    const got: Got[] = [];
    const closed = new Promise<void>((r) => ws.on("close", () => r()));
    ws.on("message", (raw) => {
      const text = String(raw);
      if (!envelope) return void got.push({ data: text, seq: 0, at: Date.now() });
      const f = JSON.parse(text) as { type: string; id?: string; data?: string; seq?: number };
      if (f.type === "message") got.push({ data: f.data ?? "", seq: f.seq ?? 0, at: Date.now() });
      else if (f.type === "request") ws.send(JSON.stringify({ type: "reply", id: f.id, data: f.data }));
    });
    ws.on("error", reject);
    ws.on("open", () => {
      if (envelope) ws.send(JSON.stringify(after === undefined ? { type: "resume" } : { type: "resume", after }));
      resolve({ got, ws, closed });
    });
  });
}

const names = (s: Sock) => s.got.map((g) => g.data);
const range = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`);

/** Publishes through the HTTP API as a careful service does: each message once, retrying 503s with the same Idempotency-Key. */
async function publish(gw: Gateway, user: string, data: string, stats: { retries: number }) {
  for (const end = Date.now() + 60_000; Date.now() < end; ) {
    const r = await gw.fetch(`/v1/publish/${SVC}/${user}`, { method: "POST", body: data, headers: { "Idempotency-Key": `${user}-${data}` }, signal: AbortSignal.timeout(20_000) });
    if (r.status === 202) return;
    const body = await r.text();
    if (r.status !== 503) throw new Error(`publish ${user} ${data}: ${r.status} ${body}`);
    expect(r.headers.get("retry-after")).toBe("1");
    stats.retries++;
    await Bun.sleep(100);
  }
  throw new Error(`publish ${user} ${data}: still 503 after 60 s`);
}

function percentile(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

describe("nats cluster (three servers, mailbox replicas 3)", () => {
  let cluster: NatsCluster;
  let g1: Gateway;
  let g2: Gateway;
  let nc: NatsConnection;
  const gateways = () => [g1, g2];

  beforeAll(async () => {
    cluster = await startCluster();
    nc = await connect({ servers: cluster.url.split(",") });
    g1 = await startGateway("bun", { env: { NATS_URL: cluster.url, ...R3 } });
    await spread();
    await cluster.waitCurrent(STREAM);
  }, 120_000);

  /** Two gateways on different servers: the client picks one at random, so g2 starts again until it does. */
  async function spread() {
    for (let i = 0; i < 8; i++) {
      if (g2) {
        const [a, b] = await Promise.all([cluster.serverOf(g1.nodeId), cluster.serverOf(g2.nodeId)]);
        if (a !== b) return;
        await g2.stop("SIGKILL");
      }
      g2 = await startGateway("bun", { env: { NATS_URL: cluster.url, ...R3 } });
    }
  }

  afterAll(async () => {
    await Promise.all([g1?.stop("SIGKILL"), g2?.stop("SIGKILL")]);
    await nc?.close();
    await cluster?.close();
  });

  test("the committed config template renders into a config nats-server accepts", async () => {
    const conf = renderConfig(readTemplate(), {
      name: "a", host: "10.0.0.1", client_port: 4222, monitor_port: 8222, cluster_port: 6222,
      store_dir: "/var/lib/nats", max_file_store: "64GB", routes: "nats://10.0.0.1:6222\n    nats://10.0.0.2:6222\n    nats://10.0.0.3:6222",
    });
    const file = `${cluster.dir}/rendered.conf`;
    await Bun.write(file, conf);
    const check = Bun.spawnSync([NATS_SERVER, "-t", "-c", file]);
    expect(check.exitCode).toBe(0);
    expect(() => renderConfig(readTemplate(), { name: "a" })).toThrow(/no value for \{\{host\}\}/);
  });

  test("clients spread over the servers: the NATS client shuffles the URL list", async () => {
    const conns = await Promise.all(Array.from({ length: 24 }, (_, i) => connect({ servers: cluster.url.split(","), name: `spread-${i}` })));
    const on = await Promise.all(conns.map((_, i) => cluster.serverOf(`spread-${i}`)));
    await Promise.all(conns.map((c) => c.close()));
    const perServer = cluster.nodes.map((n) => on.filter((s) => s === n.index).length);
    console.log(`[nats-cluster] 24 connections with the same NATS_URL, per server: ${perServer.join(" / ")}`);
    expect(perServer.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    expect(await cluster.serverOf(g1.nodeId)).not.toBe(await cluster.serverOf(g2.nodeId));
  });

  test("the mailbox streams and the group membership bucket have three replicas; the mailbox starts above any sequence an earlier stream gave out", async () => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(STREAM);
    expect(info.config.num_replicas).toBe(3);
    expect((await jsm.streams.info(`${STREAM}_CURSORS`)).config.num_replicas).toBe(3);
    const groups = await waitFor("the group membership bucket", () => jsm.streams.info("KV_WSGATE_GROUPS").catch(() => null));
    expect(groups.config.num_replicas).toBe(3);
    expect(info.state.first_seq).toBeGreaterThan(1_000_000);
    expect(g1.output()).toContain("3 replicas");
  });

  test("a replicated mailbox stream made again keeps the very first message published to it (core publish)", async () => {
    const c = await open(g1.ws, "first", false);
    try {
      const jsm = await jetstreamManager(nc);
      const before = (await jsm.streams.info(STREAM)).created;
      await jsm.streams.delete(STREAM);
      await waitFor("stream made again with users' subjects", async () => {
        const i = await jsm.streams.info(STREAM).catch(() => null);
        return i && i.created !== before && i.config.subjects.includes("ws.recv.>");
      }, 30_000);
      // On nats-server 2.9 a purge to a sequence makes the next store on a replicated stream
      // fail: a fire-and-forget publish would be lost here without a word.
      nc.publish(`ws.recv.${SVC}.first`, "m0");
      await waitFor("the first message", () => c.got.length >= 1, 10_000);
      expect(names(c)).toEqual(["m0"]);
      const info = await jsm.streams.info(STREAM);
      expect(info.state.first_seq).toBeGreaterThan(1_000_000);
      expect(info.state.messages).toBe(1); // the start-up probe left nothing behind
      await cluster.waitCurrent(STREAM);
    } finally {
      c.ws.close();
    }
  }, 60_000);

  test("the publish API answers 202 once stored, and a retry with the same Idempotency-Key is stored once", async () => {
    const jsm = await jetstreamManager(nc);
    const post = (key: string, body = "once") =>
      g1.fetch(`/v1/publish/${SVC}/idem`, { method: "POST", body, headers: { "Idempotency-Key": key } });
    expect((await post("k-1")).status).toBe(202);
    // stored by the time of the answer, on the leader's word
    expect((await jsm.streams.getMessage(STREAM, { last_by_subj: `ws.recv.${SVC}.idem` }))?.string()).toBe("once");
    const { last_seq } = (await jsm.streams.info(STREAM)).state;
    expect((await post("k-1")).status).toBe(202);
    expect((await jsm.streams.info(STREAM)).state.last_seq).toBe(last_seq);
    const bad = await post("has space");
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("Idempotency-Key must be 1 to 128 visible ASCII characters");
  });

  test("a replica count the cluster cannot hold is refused: /readyz 503 naming WSGATE_MAILBOX_REPLICAS and the cluster size", async () => {
    const g = await startGateway("bun", {
      env: { NATS_URL: cluster.url, WSGATE_MAILBOX_REPLICAS: "5", WSGATE_MAILBOX_STREAM: "FIVE", WSGATE_SUBJECT_PREFIX: "five" },
      waitReady: false,
    });
    const single = await startNats({ jetstream: true });
    const g0 = await startGateway("bun", { env: { NATS_URL: single.url, ...R3 }, waitReady: false });
    try {
      const reason = (x: Gateway) => waitFor("a refusal in /readyz", async () => {
        const r = await x.fetch("/readyz");
        const text = await r.text();
        return r.status === 503 && text.includes("WSGATE_MAILBOX_REPLICAS") ? text : null;
      }, 20_000);
      expect(await reason(g)).toContain("WSGATE_MAILBOX_REPLICAS=5 cannot be held: the NATS cluster has 3 server(s)");
      expect(await reason(g0)).toContain("WSGATE_MAILBOX_REPLICAS=3 cannot be held: JetStream runs on a single NATS server");
    } finally {
      await Promise.all([g.stop("SIGKILL"), g0.stop("SIGKILL")]);
      await stopNatsAndClean(single);
    }
  }, 60_000);

  test("a one-replica mailbox is not scaled up in place (nats-server 2.9 loses messages doing it): it keeps 1 and the log says how to move", async () => {
    const env = { NATS_URL: cluster.url, WSGATE_MAILBOX_STREAM: "UP", WSGATE_SUBJECT_PREFIX: "up" };
    const one = await startGateway("bun", { env });
    await one.stop("SIGKILL");
    const three = await startGateway("bun", { env: { ...env, ...R3 } });
    try {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info("UP")).config.num_replicas).toBe(1);
      expect((await jsm.streams.info("UP_CURSORS")).config.num_replicas).toBe(3); // never purged: scaled safely
      expect(three.output()).toContain("the mailbox stream keeps its replica count");
      expect(three.output()).toContain("nats stream rm UP");
      const r = await three.fetch(`/v1/publish/${SVC}/up`, { method: "POST", body: "still works" });
      expect(r.status).toBe(202);
    } finally {
      await three.stop("SIGKILL");
    }
  }, 60_000);

  /**
   * Users on both gateways (a raw client on one, an envelope client on the other) while a
   * service publishes MESSAGES numbered messages to each through the HTTP API; `victim`
   * picks the server to kill -9 once every user is 30% through. The envelope clients leave
   * at the kill and resume from their last seq on the other gateway. A user of an envelope
   * client is asked over HTTP every 100 ms meanwhile. Returns what was measured.
   */
  async function failover(run: string, victim: () => Promise<number>) {
    const users = Array.from({ length: USERS }, (_, i) => `${run}${i}`);
    const raw = await Promise.all(users.map((u, i) => open(gateways()[i % 2].ws, u, false)));
    let env = await Promise.all(users.map((u, i) => open(gateways()[(i + 1) % 2].ws, u, true)));
    const asked = await open(g2.ws, `${run}-asked`, true);
    // An offline user's backlog, stored (202) before the failure.
    const stats = { retries: 0 };
    for (let i = 0; i < 50; i++) await publish(g1, `${run}-off`, `m${i}`, stats);

    const sent = users.map(() => 0);
    const publishing = Promise.all(
      users.map(async (u, i) => {
        for (; sent[i] < MESSAGES; sent[i]++) await publish(gateways()[i % 2], u, `m${sent[i]}`, stats);
      }),
    );
    await waitFor("30% published", () => sent.every((n) => n >= MESSAGES * 0.3), 60_000);
    const killed = await victim();
    const placement = (await Promise.all(gateways().map((g) => cluster.serverOf(g.nodeId)))).map((i) => (i === null ? "?" : cluster.nodes[i].name));
    const leader = cluster.nodes[(await cluster.streamLeader(STREAM)) ?? -1]?.name ?? "none";
    const killedAt = Date.now();
    await cluster.kill(killed);

    // The envelope clients resume elsewhere from the last seq they saw.
    const before = env.map((s) => s.got.slice());
    env.forEach((s) => s.ws.close());
    await Promise.all(env.map((s) => s.closed));
    env = await Promise.all(users.map((u, i) => open(gateways()[i % 2].ws, u, true, before[i].at(-1)?.seq ?? 0)));

    // Request/reply during the failover and after it: an answer or a clear failure, in time.
    const outcomes: number[] = [];
    let asking = true;
    const askLoop = (async () => {
      while (asking) {
        const t0 = Date.now();
        const r = await g1.fetch(`/v1/request/${SVC}/${run}-asked?timeout=${RPC_TIMEOUT_MS}`, { method: "POST", body: "ping", signal: AbortSignal.timeout(RPC_TIMEOUT_MS + 10_000) });
        const body = await r.text();
        const took = Date.now() - t0;
        expect(took).toBeLessThan(RPC_TIMEOUT_MS + RPC_SLACK_MS);
        expect([200, 404, 503, 504]).toContain(r.status);
        if (r.status === 200) expect(body).toBe("ping");
        outcomes.push(r.status);
        await Bun.sleep(100);
      }
    })();

    try {
      await publishing;
      await waitFor("every client has the last message", () => [...raw, ...env].every((s) => s.got.some((g) => g.data === `m${MESSAGES - 1}`)), 60_000);
      await waitFor("a request answered after the failover", () => outcomes.at(-1) === 200, 30_000);
    } finally {
      asking = false;
      await askLoop;
    }

    // Clients stay connected through the NATS failover: no raw socket was closed.
    for (const s of raw) expect(s.ws.readyState).toBe(WS.OPEN);
    // Raw: every message, in order; a repeat may come (counted), nothing is missing.
    let redelivered = 0;
    for (const s of raw) {
      const seen = new Set<string>();
      const firsts = names(s).filter((d) => (seen.has(d) ? (redelivered++, false) : (seen.add(d), true)));
      expect(firsts).toEqual(range(MESSAGES));
    }
    // Envelope, resumed from the last seq: exactly every message once.
    for (let i = 0; i < USERS; i++) {
      const all = [...before[i], ...env[i].got];
      expect(all.map((g) => g.data)).toEqual(range(MESSAGES));
      for (let k = 1; k < all.length; k++) expect(all[k].seq).toBeGreaterThan(all[k - 1].seq);
    }
    // The offline user's backlog, stored before the failure, comes after it.
    const off = await open(g2.ws, `${run}-off`, false);
    await publish(g2, `${run}-off`, "m50", stats); // the end mark: anything repeated would come before it
    await waitFor("the offline backlog", () => off.got.some((g) => g.data === "m50"), 20_000);
    expect(names(off)).toEqual(range(51));

    // Delivery pause per user: the longest silence on its raw client from the kill on
    // (publishers keep going, so a silence is the failover, not a lull).
    const pauses = raw.map((s) => {
      let longest = 0;
      let last = killedAt;
      for (const g of s.got) {
        if (g.at < killedAt) continue;
        longest = Math.max(longest, g.at - last);
        last = g.at;
      }
      return longest;
    });
    const summary = {
      killed: cluster.nodes[killed].name,
      leader,
      gatewaysOn: placement.join("+"),
      pauseMsP50: percentile(pauses, 50),
      pauseMsMax: Math.max(...pauses),
      rawRedelivered: redelivered,
      publishRetries: stats.retries,
      gapsHealed: (await Promise.all(gateways().map((g) => g.metric("wsgate_mailbox_gaps_healed_total")))).join("+"),
      requests: outcomes.length,
      requestsByStatus: Object.fromEntries([...new Set(outcomes)].map((s) => [s, outcomes.filter((o) => o === s).length])),
    };
    console.log(`[nats-cluster] ${run}: ${JSON.stringify(summary)}`);
    for (const s of [...raw, ...env, asked, off]) s.ws.close();
    return { killed, summary };
  }

  let firstKilled = -1;

  /** Restarts a killed server and waits until its replica caught up; on a timeout the error carries the end of its log. */
  async function rejoin(i: number) {
    await cluster.start(i);
    try {
      await cluster.waitCurrent(STREAM, 60_000);
    } catch (err) {
      const tail = (await Bun.file(`${cluster.nodes[i].storeDir}/server.log`).text()).split("\n").slice(-40).join("\n");
      throw new Error(`${err}\n--- ${cluster.nodes[i].name} server.log (end) ---\n${tail}`);
    }
  }

  test("kill -9 of the server leading the mailbox stream while 4 users get 1,000 messages each: nothing lost, in order", async () => {
    const { killed } = await failover("lead", () => cluster.waitStreamLeader(STREAM));
    firstKilled = killed;
    // the server comes back and catches up
    await rejoin(killed);
  }, 150_000);

  test("then kill -9 of another server, one a gateway is on and not the leader: nothing lost, in order", async () => {
    await spread(); // the first kill may have sent both gateways to one server
    let leader = await cluster.waitStreamLeader(STREAM);
    const on = await Promise.all(gateways().map((g) => cluster.serverOf(g.nodeId)));
    // after the first kill both gateways may sit on the new leader's server: move the leadership away
    for (let i = 0; i < 5 && on.includes(leader) && on.every((s) => s === leader); i++) {
      await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${STREAM}`, undefined, { timeout: 5_000 }).catch(() => {});
      leader = await cluster.waitStreamLeader(STREAM, { not: leader });
    }
    await cluster.waitCurrent(STREAM);
    const candidates = on.filter((s): s is number => s !== null && s !== leader);
    const target = candidates.find((s) => s !== firstKilled) ?? candidates[0];
    expect(target).toBeDefined();
    const { killed } = await failover("conn", async () => target!);
    expect(killed).not.toBe(leader);
    await rejoin(killed);
  }, 150_000);
});
