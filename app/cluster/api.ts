// The service API over NATS request/reply, for services that do not speak HTTP. The
// gateways share one queue group, so each request is handled by one node, which asks the
// others as the HTTP routes do. Answers are the HTTP bodies; failures carry `status` too.
//   <prefix>.api.presence.<svc>                     {limit?, after?}  → ServicePresence
//   <prefix>.api.presence.<svc>.<user>                                → UserPresence
//   <prefix>.api.disconnect.<svc>.<user>[.<conn>]   {mode?}           → {closed}
//   <prefix>.api.sendto.<svc>.<user>.<conn>         message bytes     → {sent: true}
// (<conn> is `<node>.<n>`: two subject tokens.)
import type { Broker, HeaderLookup } from "../broker/broker.ts";
import { HEADER, parseFrameHint } from "../broker/broker.ts";
import { log } from "../ops/log.ts";
import { badIds, isBad, parseMode, parsePage } from "./args.ts";
import type { Control } from "./control.ts";
import type { Presence } from "./presence.ts";
import type { ClusterSubjects } from "./subjects.ts";

/** The gateways' queue group on the API subjects. */
const API_QUEUE = "wsgate-api";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Reply = { status: number; body: unknown };

export class ServiceApi {
  private unlisten: (() => void) | null = null;

  constructor(
    private readonly broker: Broker,
    private readonly subjects: ClusterSubjects,
    private readonly presence: Presence,
    private readonly control: Control,
  ) {}

  start() {
    this.unlisten = this.broker.listen(this.subjects.api, (subject, data, reply, headers) => void this.handle(subject, data, reply, headers), API_QUEUE);
  }

  stop() {
    this.unlisten?.();
    this.unlisten = null;
  }

  private async handle(subject: string, data: Uint8Array, reply: string, headers: HeaderLookup) {
    if (!reply) return;
    let r: Reply;
    try {
      r = await this.route(subject.slice(this.subjects.apiPrefix.length).split("."), data, headers);
    } catch (err) {
      log("warn", "cluster API request failed", { subject, error: String(err) });
      r = { status: 500, body: { error: `internal error: ${String(err)}` } };
    }
    const body = r.status >= 400 ? { ...(r.body as object), status: r.status } : r.body;
    try {
      this.broker.publish(reply, encoder.encode(JSON.stringify(body)));
    } catch {
      // broker away: the requester times out
    }
  }

  private async route(t: string[], data: Uint8Array, headers: HeaderLookup): Promise<Reply> {
    const [what, svc, user] = t;
    const conn = t.length === 5 ? `${t[3]}.${t[4]}` : undefined;
    if (what === "presence" && (t.length === 2 || t.length === 3)) {
      const bad = badIds({ svc, user });
      if (bad) return { status: 400, body: bad };
      if (user !== undefined) return { status: 200, body: await this.presence.user(svc, user) };
      const opts = json(data);
      const page = parsePage(opts.limit === undefined ? undefined : String(opts.limit), opts.after === undefined ? undefined : String(opts.after));
      if (isBad(page)) return { status: 400, body: page };
      return { status: 200, body: await this.presence.service(svc, page.after, page.limit) };
    }
    if (what === "disconnect" && (t.length === 3 || t.length === 5)) {
      const bad = badIds({ svc, user, conn });
      if (bad) return { status: 400, body: bad };
      const mode = parseMode(json(data).mode as string | undefined);
      if (isBad(mode)) return { status: 400, body: mode };
      const r = await this.control.disconnect(svc, user, conn ?? null, mode);
      if (conn && r.closed === 0) return { status: 404, body: { error: `connection ${conn} of ${svc}/${user} is not open` } };
      return { status: 200, body: r };
    }
    if (what === "sendto" && t.length === 5) {
      const bad = badIds({ svc, user, conn });
      if (bad) return { status: 400, body: bad };
      const sent = await this.control.send(svc, user, conn!, data, parseFrameHint(headers(HEADER.frame)));
      return sent ? { status: 200, body: { sent: true } } : { status: 404, body: { error: `connection ${conn} of ${svc}/${user} is not open` } };
    }
    return { status: 404, body: { error: `unknown API subject ${this.subjects.apiPrefix}${t.join(".")}: see the README's cluster section` } };
  }
}

/** An optional JSON object body; anything else reads as no options. */
function json(data: Uint8Array): Record<string, unknown> {
  if (data.length === 0) return {};
  try {
    const v = JSON.parse(decoder.decode(data));
    return typeof v === "object" && v !== null ? v : {};
  } catch {
    return {};
  }
}
