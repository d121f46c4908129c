// What the console's live stream carries: every second a sample of this node and the
// cluster's node list, and the lifecycle events and refusals as they happen. One ticker
// serves every open console; the node list is only asked for while a console is open.
import { log } from "../ops/log.ts";
import type { Sample, Series } from "./series.ts";

/** Events kept for a console that opens now: enough to see what just happened, bounded. */
export const EVENTS_KEPT = 200;
/** Events passed on to consoles per second; the rest are counted as skipped. */
export const EVENTS_PER_SECOND = 100;

/** A lifecycle event (connect, disconnect, online, offline, node-down) or a refusal burst. */
export type TailEvent = Record<string, unknown> & { event: string; time: string };

/** The node list as the cluster reports it, or this node alone when no cluster API answers. */
export type NodesView = { source: "cluster" | "local"; nodes: unknown[]; downAfterMs?: number; error?: string };

export type FeedMessage = { type: "tick"; sample: Sample; nodes: NodesView } | { type: "event"; event: TailEvent };

export type FeedDeps = {
  series: Series;
  nodeId: string;
  nodes: () => Promise<NodesView>;
  /** Subscribes to the cluster's lifecycle events (JSON text each); null when there are none to hear. */
  events: ((onEvent: (json: string) => void) => () => void) | null;
  now?: () => number;
};

export class Feed {
  private readonly listeners = new Set<(m: FeedMessage) => void>();
  private readonly recent: TailEvent[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private unlisten: (() => void) | null = null;
  private lastNodes: NodesView = { source: "local", nodes: [] };
  private readonly now: () => number;
  private thisSecond = 0;
  private skipped = 0;

  constructor(private readonly deps: FeedDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Samples every second from now on, console open or not, so the charts have a past. */
  start() {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), 1000);
    // The console must never keep a process alive that is otherwise done (tests, drain).
    (this.timer as { unref?: () => void }).unref?.();
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unlisten?.();
    this.unlisten = null;
  }

  /** Lifecycle events are only listened to while a console is open: a cluster's events are a firehose nobody else here needs. */
  subscribe(fn: (m: FeedMessage) => void): () => void {
    this.listeners.add(fn);
    if (this.listeners.size === 1 && !this.unlisten) this.unlisten = this.deps.events?.((json) => this.onEvent(json)) ?? null;
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size > 0) return;
      this.unlisten?.();
      this.unlisten = null;
    };
  }

  get watchers(): number {
    return this.listeners.size;
  }

  history() {
    return { series: this.deps.series.columns(), events: [...this.recent], nodes: this.lastNodes };
  }

  async tick() {
    const { sample, refusals } = this.deps.series.sample(this.now());
    const time = new Date(sample.t * 1000).toISOString();
    for (const r of refusals) this.push({ event: "refused", node: this.deps.nodeId, reason: r.reason, count: r.count, time });
    if (this.skipped > 0) this.push({ event: "skipped", node: this.deps.nodeId, count: this.skipped, time });
    [this.skipped, this.thisSecond] = [0, 0];
    if (this.listeners.size === 0) return;
    await this.refreshNodes();
    this.emit({ type: "tick", sample, nodes: this.lastNodes });
  }

  /** Asks for the node list now (a console that just opened should not wait a second for it). */
  async refreshNodes() {
    try {
      this.lastNodes = await this.deps.nodes();
    } catch (err) {
      this.lastNodes = { ...this.lastNodes, error: String(err) };
    }
  }

  private onEvent(json: string) {
    // A reconnect storm is thousands of events a second: the tail says how many it left out.
    if (++this.thisSecond > EVENTS_PER_SECOND) {
      this.skipped++;
      return;
    }
    try {
      const e = JSON.parse(json) as TailEvent;
      if (e && typeof e.event === "string") this.push(e);
    } catch {
      log("warn", "admin console: an event that is not JSON was skipped", { bytes: json.length });
    }
  }

  private push(e: TailEvent) {
    this.recent.push(e);
    if (this.recent.length > EVENTS_KEPT) this.recent.shift();
    this.emit({ type: "event", event: e });
  }

  private emit(m: FeedMessage) {
    for (const fn of this.listeners) fn(m);
  }
}
