// NATS broker: one core subscription per served user subject, shared delivery callback.
import { connect, headers as natsHeaders, Match } from "@nats-io/transport-node";
import type { Msg, MsgCallback, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Broker, BrokerHooks, BrokerState } from "./broker.ts";
import { HEADER, parseFrameHint } from "./broker.ts";
import { log } from "./log.ts";

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;

export class NatsBroker implements Broker {
  readonly kind = "nats";
  private nc: NatsConnection | null = null;
  private current: BrokerState = "connecting";
  private stopping = false;
  private readonly onMsg: MsgCallback<Msg>;

  constructor(
    private servers: string,
    private name: string,
    private hooks: BrokerHooks,
  ) {
    const deliver = hooks.deliver;
    // The one callback every user subscription shares: nothing is allocated per subscription or message.
    this.onMsg = (err, msg) => {
      if (err) {
        log("warn", "nats subscription error", { error: String(err) });
        return;
      }
      const h = msg.headers;
      if (!h) return deliver(msg.subject, msg.data, undefined, 0, 0);
      const seq = h.get("Nats-Sequence");
      deliver(
        msg.subject,
        msg.data,
        parseFrameHint(h.get(HEADER.frame, Match.IgnoreCase)),
        seq ? Number(seq) : 0,
        seq ? Number(h.get("Nats-Last-Sequence")) : 0,
      );
    };
  }

  state() {
    return this.current;
  }

  private setState(s: BrokerState) {
    if (this.current === s) return;
    this.current = s;
    this.hooks.onState(s);
  }

  start(): Promise<void> {
    void this.connectLoop();
    return Promise.resolve();
  }

  private async connectLoop() {
    let wait = BACKOFF_MIN_MS;
    let attempt = 0;
    while (!this.stopping) {
      attempt++;
      try {
        const nc = await connect({
          servers: this.servers.split(","),
          name: this.name,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          pingInterval: 10_000,
          timeout: 3_000,
        });
        if (this.stopping) {
          await nc.close();
          return;
        }
        log("info", "nats connected", { server: nc.getServer(), attempt });
        await this.prepare(nc);
        if (this.stopping) return;
        this.nc = nc;
        this.hooks.rewatchAll();
        this.setState("connected");
        void this.watchStatus(nc);
        const err = await nc.closed();
        this.nc = null;
        if (this.stopping) return;
        log("error", "nats connection closed; connecting again", { error: err ? String(err) : undefined });
        this.setState("connecting");
        wait = BACKOFF_MIN_MS;
      } catch (err) {
        log("warn", "nats unreachable; retrying", { servers: this.servers, attempt, retryInMs: wait, error: String(err) });
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, BACKOFF_MAX_MS);
      }
    }
  }

  /** Retries the connection's preparation (mailbox streams) until it works or the connection goes. */
  private async prepare(nc: NatsConnection) {
    if (!this.hooks.prepare) return;
    let wait = BACKOFF_MIN_MS;
    for (;;) {
      try {
        await this.hooks.prepare(nc);
        return;
      } catch (err) {
        if (this.stopping || nc.isClosed()) throw err;
        log("error", "broker connected but not usable yet; retrying", { retryInMs: wait, error: String(err) });
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, BACKOFF_MAX_MS);
      }
    }
  }

  private async watchStatus(nc: NatsConnection) {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        log("warn", "nats disconnected; reconnecting", { server: s.server });
        this.setState("reconnecting");
      } else if (s.type === "reconnect") {
        // nats.js re-sends every live subscription on reconnect. The server may have
        // lost its JetStream state, so the mailbox streams are ensured again.
        log("info", "nats reconnected", { server: s.server });
        void this.prepare(nc).catch(() => {});
        this.setState("connected");
      } else if (s.type === "error") {
        log("warn", "nats error", { error: String(s.error) });
      }
    }
  }

  publish(subject: string, data: Uint8Array, hdrs?: Record<string, string>) {
    const nc = this.nc;
    if (!nc) throw new Error("nats is not connected");
    if (hdrs) {
      const h = natsHeaders();
      for (const k in hdrs) h.set(k, hdrs[k]);
      nc.publish(subject, data, { headers: h });
    } else {
      nc.publish(subject, data);
    }
  }

  watch(subject: string): Subscription | null {
    // Before the first connection there is nothing to subscribe on; rewatchAll() catches up.
    return this.nc ? this.nc.subscribe(subject, { callback: this.onMsg }) : null;
  }

  unwatch(handle: unknown) {
    const sub = handle as Subscription | null;
    if (sub && !sub.isClosed()) sub.unsubscribe();
  }

  async close() {
    this.stopping = true;
    const nc = this.nc;
    if (nc && !nc.isClosed()) {
      try {
        await nc.drain();
      } catch {
        await nc.close();
      }
    }
    this.setState("closed");
  }
}
