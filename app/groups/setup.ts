// Builds the groups module for a node from its config: the in-memory store on an embedded
// node, the NATS key-value store (plus membership requests) with NATS. The gateway calls
// `prepare` on every new broker connection (BrokerHooks.prepare) and `metrics` on scrape.
import type { NatsConnection } from "@nats-io/nats-core";
import type { GroupsConfig } from "../ops/config.ts";
import { type EachConn, Groups, type GroupsDeps } from "./groups.ts";
import { KvMembershipStore } from "./kv-store.ts";
import { MembershipRequests } from "./requests.ts";
import { MemoryMembershipStore } from "./store.ts";
import { groupSubjects } from "./subjects.ts";
import type { Topics } from "./fanout.ts";
import type { GroupStats } from "./interest.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";

export type GroupsSetup = {
  groups: Groups;
  /** NATS mode: binds the store and the request subscription to a broker connection */
  prepare: ((nc: NatsConnection) => Promise<void>) | null;
};

export function setupGroups(
  config: { prefix: string; nats: object | null; groups: GroupsConfig },
  broker: GroupsDeps["broker"],
  topics: Topics,
  textAsString: boolean,
  eachConn: EachConn,
): GroupsSetup {
  const c = config.groups;
  const caps = { maxGroupsPerUser: c.maxGroupsPerUser, maxGroupMembers: c.maxGroupMembers };
  const subjects = groupSubjects(config.prefix);
  let kv: KvMembershipStore | null = null;
  const groups = new Groups({
    broker,
    topics,
    textAsString,
    subjects,
    maxBroadcastsPerSec: c.maxBroadcastsPerSec,
    eachConn,
    store: (changed) =>
      config.nats ? (kv = new KvMembershipStore({ bucket: c.bucket, replicas: c.replicas }, caps, changed)) : new MemoryMembershipStore(caps, changed),
  });
  if (!kv) return { groups, prepare: null };
  const store: KvMembershipStore = kv;
  const requests = new MembershipRequests(store, subjects);
  let attaching: NatsConnection | null = null;
  // Readiness does not wait on the bucket: without JetStream (or while it is away) group and
  // broadcast publishing and token claims still work, and membership changes answer 503.
  const attach = async (nc: NatsConnection) => {
    attaching = nc;
    for (let attempt = 0; attaching === nc && !nc.isClosed(); attempt++) {
      try {
        await store.attach(nc);
        if (attempt > 0) log("info", "group membership store ready", { bucket: c.bucket });
        break;
      } catch (err) {
        const wait = backoff(attempt);
        log(attempt === 0 ? "warn" : "debug", "group membership store unavailable (needs JetStream); membership changes answer 503 until it is", { bucket: c.bucket, retryInMs: wait, error: String(err) });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    if (attaching === nc) attaching = null;
  };
  return {
    groups,
    prepare: (nc) => {
      requests.attach(nc);
      if (attaching !== nc) void attach(nc);
      return Promise.resolve();
    },
  };
}

/** Prometheus lines for the groups module, appended to /metrics. */
export function renderGroupMetrics(s: GroupStats): string {
  const line = (name: string, type: string, help: string, value: number) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
  return (
    line("wsgate_group_messages_total", "counter", "Group and broadcast messages taken from the broker.", s.groupMessages) +
    line("wsgate_group_deliveries_total", "counter", "Group and broadcast frames handed to local sockets (native topic publish).", s.groupDeliveries) +
    line("wsgate_broadcasts_dropped_total", "counter", "Broadcasts dropped at this node over WSGATE_MAX_BROADCASTS_PER_SEC.", s.broadcastsDropped) +
    line("wsgate_group_subscriptions", "gauge", "Broker subscriptions held for groups and broadcasts.", s.groupSubscriptions)
  );
}
