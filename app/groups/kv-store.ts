// NATS mode: membership lives in a JetStream key-value bucket, one key per user,
// `<svc>.<user>` → the JSON list of the user's groups. Why a KV bucket and one record per user:
// - a connection opening needs its user's groups with no I/O; every node keeps the whole
//   index from one watch of the bucket (initial values, then every change as it happens),
//   which is also how every node learns a change at once;
// - the groups-per-user cap is exact: a change is a compare-and-set on the user's record
//   (update at the revision read), retried when another node wrote in between;
// - operators can read and repair it with stock tools (`nats kv get WSGATE_GROUPS s1.u1`).
import type { NatsConnection, QueuedIterator } from "@nats-io/nats-core";
import { type KV, type KvWatchEntry, Kvm } from "@nats-io/kv";
import * as v from "valibot";
import { ID_PATTERN, isId } from "../../protocol/ids.ts";
import { log } from "../ops/log.ts";
import { backoff } from "../util/backoff.ts";
import { MembershipIndex, type MembershipChange } from "./members.ts";
import { type GroupCaps, type MembershipResult, type MembershipStore, planChange } from "./store.ts";

export type KvStoreConfig = { bucket: string; replicas: number };

/** JetStream API calls give up after this long; the caller gets a 503. */
const API_TIMEOUT_MS = 5_000;
/** Compare-and-set attempts before a change is answered 503 (another writer kept winning). */
const CAS_ATTEMPTS = 8;

/** A record as stored; anything else (an operator's typo) reads as no groups, with a warning. */
const RecordSchema = v.array(v.pipe(v.string(), v.regex(ID_PATTERN)));

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class KvMembershipStore implements MembershipStore {
  readonly index: MembershipIndex;
  private kv: KV | null = null;
  private nc: NatsConnection | null = null;
  private watcher: QueuedIterator<KvWatchEntry> | null = null;
  /** the connection a background attach is retrying on */
  private attaching: NatsConnection | null = null;

  constructor(
    private readonly config: KvStoreConfig,
    private readonly caps: GroupCaps,
    changed: MembershipChange,
  ) {
    this.index = new MembershipIndex(changed);
  }

  /**
   * A new broker connection, or the same one after a reconnect. Readiness does not wait on
   * the bucket: without JetStream (or while it is away) group publishing, broadcast and token
   * claims still work and membership changes answer 503, while this retries with backoff.
   */
  attach(conn: unknown): void {
    const nc = conn as NatsConnection;
    if (this.attaching !== nc) void this.retry(nc);
  }

  private async retry(nc: NatsConnection) {
    this.attaching = nc;
    for (let attempt = 0; this.attaching === nc && !nc.isClosed(); attempt++) {
      try {
        await this.open(nc);
        if (attempt > 0) log("info", "group membership store ready", { bucket: this.config.bucket });
        break;
      } catch (err) {
        const wait = backoff(attempt);
        const msg = "group membership store unavailable (it needs JetStream); membership changes answer 503 until it is";
        log(attempt === 0 ? "warn" : "debug", msg, { bucket: this.config.bucket, retryInMs: wait, error: String(err) });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    if (this.attaching === nc) this.attaching = null;
  }

  /** Creates the bucket if missing and starts the watch; on the connection already watched, only ensures the bucket. */
  async open(nc: NatsConnection): Promise<void> {
    const kv = await new Kvm(nc).create(this.config.bucket, { history: 1, replicas: this.config.replicas, timeout: API_TIMEOUT_MS });
    if (nc === this.nc && this.watcher) {
      this.kv = kv;
      return;
    }
    this.watcher?.stop();
    this.nc = nc;
    this.kv = kv;
    // The watch's ordered consumer resumes by itself after a reconnect.
    const watcher = (this.watcher = await kv.watch({ key: ">" }));
    void this.follow(watcher);
  }

  add(svc: string, group: string, user: string) {
    return this.change("add", svc, group, user);
  }

  remove(svc: string, group: string, user: string) {
    return this.change("remove", svc, group, user);
  }

  async close() {
    this.watcher?.stop();
    this.watcher = null;
    this.kv = null;
  }

  private async follow(watcher: QueuedIterator<KvWatchEntry>) {
    try {
      for await (const e of watcher) this.take(e.key, e.operation === "PUT" ? e.value : null, e.revision);
    } catch (err) {
      if (watcher === this.watcher) log("error", "group membership watch ended", { error: String(err) });
    }
  }

  /** Applies one record to the index; `value` null for a deleted key. */
  private take(key: string, value: Uint8Array | null, revision: number): readonly string[] {
    const dot = key.indexOf(".");
    const svc = key.slice(0, dot);
    const user = key.slice(dot + 1);
    if (dot < 0 || !isId(svc) || !isId(user)) return [];
    const groups = value ? this.parse(key, value) : [];
    this.index.apply(svc, user, groups, revision);
    return groups;
  }

  private parse(key: string, value: Uint8Array): string[] {
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(value));
    } catch {
      json = undefined;
    }
    const r = v.safeParse(RecordSchema, json);
    if (r.success) return [...new Set(r.output)];
    log("warn", "group membership record is not a JSON list of group ids; read as no groups", { bucket: this.config.bucket, key });
    return [];
  }

  private async change(op: "add" | "remove", svc: string, group: string, user: string): Promise<MembershipResult> {
    const key = svc + "." + user;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = this.kv;
      if (!kv) return { ok: false, status: 503, error: "group membership store is not connected yet (NATS); retry shortly" };
      let revision: number;
      try {
        const e = await kv.get(key);
        const current = e ? this.take(key, e.operation === "PUT" ? e.value : null, e.revision) : [];
        const next = planChange(op, current, svc, group, user, this.caps, this.index);
        if (next === null) return { ok: true, changed: false, groups: current };
        if ("error" in next) return { ok: false, ...next };
        const data = encoder.encode(JSON.stringify(next));
        revision = e ? await kv.update(key, data, e.revision) : await kv.create(key, data);
        this.index.apply(svc, user, next, revision);
        return { ok: true, changed: true, groups: next };
      } catch (err) {
        if (!isConflict(err)) return { ok: false, status: 503, error: `group membership store failed: ${String(err)}` };
      }
    }
    return { ok: false, status: 503, error: `membership of ${user} in ${svc} kept changing under this request; retry` };
  }
}

/** Another writer got there first: the record's revision moved (update) or it now exists (create). */
function isConflict(err: unknown): boolean {
  return /wrong last sequence|key exists|already exists/i.test(String((err as Error)?.message ?? err));
}
