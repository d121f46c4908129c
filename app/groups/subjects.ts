// The groups module's subjects (the public contract, README "Groups and broadcast") and
// the node-local topic names its sockets join.

export type GroupSubjects = {
  /** services → every member of a group: `<prefix>.group.<svc>.<group>` */
  group(svc: string, group: string): string;
  /** services → every connection of a service: `<prefix>.bcast.<svc>` */
  bcast(svc: string): string;
  /** membership requests: `<prefix>.groups.<op>.<svc>.…` (requests.ts) */
  requests: string;
  /** what precedes `<op>` in a membership request subject */
  requestPrefix: string;
};

export function groupSubjects(prefix: string): GroupSubjects {
  return {
    group: (svc, group) => `${prefix}.group.${svc}.${group}`,
    bcast: (svc) => `${prefix}.bcast.${svc}`,
    requests: `${prefix}.groups.>`,
    requestPrefix: `${prefix}.groups.`,
  };
}

/** Native topics are per process: the names only need to keep groups, broadcasts and kinds apart. */
export const groupTopic = (svc: string, group: string) => `g:${svc}.${group}`;
export const bcastTopic = (svc: string) => `b:${svc}`;
export const RAW = ":raw";
export const ENV = ":env";
