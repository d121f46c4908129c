// Builds the groups module for a node from its config: the in-memory store on an embedded
// node, the NATS key-value store with NATS, Redis sets with Redis (both with membership requests); and its /metrics lines.
import type { GroupsConfig } from "../ops/config.ts";
import { Groups, type GroupsCore } from "./groups.ts";
import type { MembershipChange } from "./members.ts";
import { KvMembershipStore } from "./kv-store.ts";
import { MemoryMembershipStore, type MembershipStore } from "./store.ts";
import { RedisMembershipStore } from "./redis-store.ts";
import { groupSubjects } from "./subjects.ts";
import type { Topics } from "./fanout.ts";
import type { GroupStats } from "./interest.ts";

/** The Gateway's factory for its groups module (GatewayDeps.groups). */
export function groupsFactory(config: { prefix: string; nats: object | null; redis: object | null; groups: GroupsConfig }, topics: Topics, textAsString: boolean) {
  const c = config.groups;
  const caps = { maxGroupsPerUser: c.maxGroupsPerUser, maxGroupMembers: c.maxGroupMembers };
  const subjects = groupSubjects(config.prefix);
  return (core: GroupsCore) => {
    const store = (changed: MembershipChange): MembershipStore => {
      if (config.redis) return new RedisMembershipStore(config.prefix, caps, changed);
      if (!config.nats) return new MemoryMembershipStore(caps, changed);
      return new KvMembershipStore({ bucket: c.bucket, replicas: c.replicas }, caps, changed);
    };
    // Over a broker other nodes share, services may change membership by request too.
    const serveRequests = !!(config.nats || config.redis);
    return new Groups({ topics, textAsString, subjects, maxBroadcastsPerSec: c.maxBroadcastsPerSec, store, serveRequests }, core);
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
