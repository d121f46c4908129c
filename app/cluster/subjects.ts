// Cluster subjects, all under the gateway's prefix. The README lists them with permissions.

export type ClusterSubjects = {
  /** every node's periodic announce and its goodbye */
  announce: string;
  /** node-down events for services to reconcile */
  nodeEvents: string;
  /** connect/disconnect/online/offline of one user */
  events(svc: string, user: string): string;
  /** what a service's events start with (the embedded SSE tap) */
  eventsOf(svc: string): string;
  /** asked of every node at once (scatter) */
  query: string;
  /** asked of one node (one connection's node) */
  node(nodeId: string): string;
  /** service API over NATS request/reply: presence, disconnect, send to one connection */
  api: string;
  apiPrefix: string;
};

export function clusterSubjects(prefix: string): ClusterSubjects {
  return {
    announce: `${prefix}.nodes.announce`,
    nodeEvents: `${prefix}.events.nodes`,
    events: (svc, user) => `${prefix}.events.${svc}.${user}`,
    eventsOf: (svc) => `${prefix}.events.${svc}.`,
    query: `${prefix}.cluster.query`,
    node: (nodeId) => `${prefix}.cluster.node.${nodeId}`,
    api: `${prefix}.api.>`,
    apiPrefix: `${prefix}.api.`,
  };
}
