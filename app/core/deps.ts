// What the Gateway is built from: made before it, passed in whole (createGateway in startup.ts).
import type { Broker, BrokerHooks } from "../broker/broker.ts";
import type { Cluster } from "../cluster/cluster.ts";
import type { GatewayView, Lifecycle } from "../cluster/gateway-node.ts";
import type { Groups, GroupsCore } from "../groups/groups.ts";
import type { MailboxCore, MailboxDelivery } from "../mailbox/delivery.ts";
import type { Config } from "../ops/config.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Security } from "../security/security.ts";
import type { Subjects } from "./subjects.ts";
import type { Transport } from "./transport.ts";

/** Everything the Gateway works with, made before it (createGateway in startup.ts wires them). */
export type GatewayDeps = {
  config: Config;
  transport: Transport;
  metrics: Metrics;
  subjects: Subjects;
  security: Security;
  /** Makes the broker, given the hooks it calls back (deliver, requests, state changes). */
  broker: (hooks: BrokerHooks) => Broker;
  /** Makes the durable mailbox over the core's narrow interface; null when it is off. */
  mailbox: ((core: MailboxCore) => MailboxDelivery) | null;
  /** Makes groups and broadcast over the core's narrow interface (app/groups). */
  groups: ((core: GroupsCore) => Groups) | null;
  /** Makes the cluster features (membership, events, presence, control) over the Gateway's view of itself. */
  cluster?: (broker: Broker, view: GatewayView) => { cluster: Cluster; lifecycle: Lifecycle | null };
};
