// Membership over the broker: services send requests to `<prefix>.groups.<op>.…` (api.ts lists
// the ops) and get the same JSON answers as over HTTP, with the status in the body. The nodes
// listen as one queue group, so each request is answered once (NATS: a queue subscription;
// Redis: the node that claims the request's reply channel, see app/broker/redis-listen.ts).
import type { Broker } from "../broker/broker.ts";
import { log } from "../ops/log.ts";
import { type Answer, answerRequest } from "./api.ts";
import type { MembershipStore } from "./store.ts";
import type { GroupSubjects } from "./subjects.ts";

const QUEUE = "wsgate-groups";
const encoder = new TextEncoder();

export class MembershipRequests {
  private unlisten: (() => void) | null = null;

  constructor(
    private readonly store: MembershipStore,
    private readonly subjects: GroupSubjects,
    private readonly broker: Pick<Broker, "listen" | "publish">,
  ) {}

  /** The broker keeps the listener across its reconnects. */
  start() {
    if (this.unlisten) return;
    const cut = this.subjects.requestPrefix.length;
    this.unlisten = this.broker.listen(
      this.subjects.requests,
      (subject, _data, reply) => {
        if (!reply) return;
        void Promise.resolve(answerRequest(this.store, subject.slice(cut)))
          .catch((e): Answer => ({ status: 500, body: { error: String(e) } }))
          .then((a) => {
            try {
              this.broker.publish(reply, encoder.encode(JSON.stringify({ status: a.status, ...a.body })));
            } catch (e) {
              log("warn", "could not answer a membership request", { subject, error: String(e) });
            }
          });
      },
      QUEUE,
    );
  }

  close() {
    this.unlisten?.();
    this.unlisten = null;
  }
}
