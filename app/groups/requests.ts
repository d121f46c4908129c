// Membership over NATS: services send requests to `<prefix>.groups.<op>.…` (api.ts lists
// the ops) and get the same JSON answers as over HTTP, with the status in the body. The
// nodes share the subscription as a queue group, so each request is answered once.
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { log } from "../ops/log.ts";
import { type Answer, answerRequest } from "./api.ts";
import type { MembershipStore } from "./store.ts";
import type { GroupSubjects } from "./subjects.ts";

const QUEUE = "wsgate-groups";
const encoder = new TextEncoder();

export class MembershipRequests {
  private sub: Subscription | null = null;
  private nc: NatsConnection | null = null;

  constructor(
    private readonly store: MembershipStore,
    private readonly subjects: GroupSubjects,
  ) {}

  /** Subscribes on a new broker connection; nats.js renews it across reconnects of the same one. */
  attach(nc: NatsConnection) {
    if (nc === this.nc) return;
    this.sub?.unsubscribe();
    this.nc = nc;
    const cut = this.subjects.requestPrefix.length;
    this.sub = nc.subscribe(this.subjects.requests, {
      queue: QUEUE,
      callback: (err, msg) => {
        if (err || !msg.reply) return;
        void Promise.resolve(answerRequest(this.store, msg.subject.slice(cut)))
          .catch((e): Answer => ({ status: 500, body: { error: String(e) } }))
          .then((a) => {
            try {
              msg.respond(encoder.encode(JSON.stringify({ status: a.status, ...a.body })));
            } catch (e) {
              log("warn", "could not answer a membership request", { subject: msg.subject, error: String(e) });
            }
          });
      },
    });
  }

  close() {
    this.sub?.unsubscribe();
    this.sub = null;
    this.nc = null;
  }
}
