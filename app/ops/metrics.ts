// Prometheus text exposition. The set of series is small and fixed, so plain number
// fields are kept (a hot-path increment is one property write) and rendered on scrape.
// prom-client would pull node:* modules into the runtime-agnostic core.

import { VERSION } from "./version.ts";

/** What the process costs, read by the adapter (the core cannot reach /proc or node:process). */
export type ProcessStats = {
  residentBytes: number;
  cpuSeconds: number;
  /** -1 when the runtime may not list its descriptors (Deno without read access to /proc/self/fd) */
  openFds: number;
  startTimeSeconds: number;
};

export type RefusalReason =
  | "identity"
  | "node_full"
  | "fd_limit"
  | "broker_down"
  | "draining"
  | "bad_request"
  | "origin"
  | "upgrade_rate"
  | "user_full";

/** answered: the client replied; client_error: its handler failed; expired: the requester's timeout passed; closed: the socket went first; overloaded: no socket had room */
export type RequestOutcome = "answered" | "client_error" | "expired" | "closed" | "overloaded";
export type CallOutcome = "ok" | "service_error" | "no_responders" | "timeout" | "too_many" | "unavailable";

export class Metrics {
  connections = 0;
  users = 0;
  upgrades = 0;
  refused: Record<RefusalReason, number> = {
    identity: 0,
    node_full: 0,
    fd_limit: 0,
    broker_down: 0,
    draining: 0,
    bad_request: 0,
    origin: 0,
    upgrade_rate: 0,
    user_full: 0,
  };
  messagesIn = 0;
  bytesIn = 0;
  messagesOut = 0;
  bytesOut = 0;
  /** frames the runtime could not send (socket closed or buffer full) */
  dropped = 0;
  /** sends that were accepted but queued behind a full socket buffer */
  backpressure = 0;
  tooLarge = 0;
  publishErrors = 0;
  brokerConnected = 0;
  brokerReconnects = 0;
  openFilesLimit = 0;
  draining = 0;
  mailboxBacklogDelivered = 0;
  mailboxCatchups = 0;
  mailboxCatchupSeconds = 0;
  mailboxCatchupErrors = 0;
  mailboxPasses = 0;
  mailboxGaps = 0;
  mailboxDuplicates = 0;
  /** security and abuse limits (issue 4) */
  rateLimited = 0;
  slowConsumers = 0;
  tokenExpired = 0;
  closeTimeouts = 0;
  serviceApiRefused = 0;
  /** admin console sign-ins with a wrong token (app/admin) */
  adminSigninFailures = 0;
  /** request/reply through the wsgate.v1 envelope (rpc.ts) */
  envelopeErrors = 0;
  requests: Record<RequestOutcome, number> = { answered: 0, client_error: 0, expired: 0, closed: 0, overloaded: 0 };
  calls: Record<CallOutcome, number> = { ok: 0, service_error: 0, no_responders: 0, timeout: 0, too_many: 0, unavailable: 0 };
  rpcPending = 0;

  render(nodeId: string, runtime: string, proc?: ProcessStats): string {
    const lines: string[] = [];
    const put = (name: string, type: "counter" | "gauge", help: string, value: number, labels = "") => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${value}`);
    };
    lines.push(`# HELP wsgate_info Gateway node identity.`, `# TYPE wsgate_info gauge`, `wsgate_info{node="${nodeId}",runtime="${runtime}"} 1`);
    put("wsgate_build_info", "gauge", "The release and runtime of this process.", 1, `{version="${VERSION}",runtime="${runtime}"}`);
    // The names Prometheus client libraries use, so stock dashboards and alerts work.
    if (proc) {
      put("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", proc.residentBytes);
      put("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.", proc.cpuSeconds);
      if (proc.openFds >= 0) put("process_open_fds", "gauge", "Number of open file descriptors.", proc.openFds);
      if (this.openFilesLimit > 0) put("process_max_fds", "gauge", "Maximum number of open file descriptors.", this.openFilesLimit);
      put("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.", proc.startTimeSeconds);
    }
    put("wsgate_connections", "gauge", "Open WebSocket connections.", this.connections);
    put("wsgate_users", "gauge", "Distinct (service, user) pairs served, each holding one broker subscription.", this.users);
    put("wsgate_upgrades_total", "counter", "WebSocket upgrades accepted.", this.upgrades);
    lines.push("# HELP wsgate_upgrades_refused_total Upgrades refused, by reason.", "# TYPE wsgate_upgrades_refused_total counter");
    for (const [reason, n] of Object.entries(this.refused)) lines.push(`wsgate_upgrades_refused_total{reason="${reason}"} ${n}`);
    put("wsgate_messages_in_total", "counter", "Frames received from clients and published.", this.messagesIn);
    put("wsgate_bytes_in_total", "counter", "Payload bytes received from clients.", this.bytesIn);
    put("wsgate_messages_out_total", "counter", "Frames sent to clients.", this.messagesOut);
    put("wsgate_bytes_out_total", "counter", "Payload bytes sent to clients.", this.bytesOut);
    put("wsgate_dropped_total", "counter", "Frames for a client that the runtime refused to send.", this.dropped);
    put("wsgate_backpressure_total", "counter", "Frames queued behind a full socket buffer.", this.backpressure);
    put("wsgate_too_large_total", "counter", "Client frames over the size limit (connection closed with 1009).", this.tooLarge);
    put("wsgate_rate_limited_total", "counter", "Connections closed (4003) for sending over WSGATE_MAX_MSGS_PER_SEC.", this.rateLimited);
    put("wsgate_slow_consumers_total", "counter", "Connections closed (4002) with an outbound buffer over WSGATE_MAX_BUFFERED_BYTES.", this.slowConsumers);
    put("wsgate_token_expired_total", "counter", "Connections closed (4001) when their token expired.", this.tokenExpired);
    put("wsgate_close_timeouts_total", "counter", "Closing sockets cut because the peer never finished the close handshake.", this.closeTimeouts);
    put("wsgate_service_api_refused_total", "counter", "Service API requests (publish, event stream) refused for a missing or wrong bearer token.", this.serviceApiRefused);
    put("wsgate_admin_signin_failures_total", "counter", "Admin console sign-ins refused for a wrong token.", this.adminSigninFailures);
    put("wsgate_publish_errors_total", "counter", "Publishes to the broker that failed.", this.publishErrors);
    put("wsgate_broker_connected", "gauge", "1 while the broker connection is up.", this.brokerConnected);
    put("wsgate_broker_reconnects_total", "counter", "Broker reconnections after a loss.", this.brokerReconnects);
    put("wsgate_open_files_limit", "gauge", "Effective soft limit on open files (each socket is one).", this.openFilesLimit);
    put("wsgate_draining", "gauge", "1 while the node drains for shutdown.", this.draining);
    put("wsgate_mailbox_backlog_delivered_total", "counter", "Messages delivered from the mailbox stream (backlog and healed gaps).", this.mailboxBacklogDelivered);
    lines.push(
      "# HELP wsgate_mailbox_catchup_seconds Time to bring a user up to date from the mailbox.",
      "# TYPE wsgate_mailbox_catchup_seconds summary",
      `wsgate_mailbox_catchup_seconds_sum ${this.mailboxCatchupSeconds}`,
      `wsgate_mailbox_catchup_seconds_count ${this.mailboxCatchups}`,
    );
    put("wsgate_mailbox_shared_reads_total", "counter", "Ordered reads of the stream shared by many catch-ups at once (reconnect storms).", this.mailboxPasses);
    put("wsgate_mailbox_catchup_errors_total", "counter", "Catch-ups that failed and were retried.", this.mailboxCatchupErrors);
    put("wsgate_mailbox_gaps_healed_total", "counter", "Breaks in a user's live sequence chain healed from the stream.", this.mailboxGaps);
    put("wsgate_mailbox_duplicates_skipped_total", "counter", "Live messages already delivered from the stream, not sent again.", this.mailboxDuplicates);
    put("wsgate_envelope_errors_total", "counter", "wsgate.v1 frames refused with an error frame (not JSON, failed the schema, binary).", this.envelopeErrors);
    lines.push("# HELP wsgate_requests_total Service to client requests, by outcome.", "# TYPE wsgate_requests_total counter");
    for (const [outcome, n] of Object.entries(this.requests)) lines.push(`wsgate_requests_total{outcome="${outcome}"} ${n}`);
    lines.push("# HELP wsgate_calls_total Client to service calls, by outcome.", "# TYPE wsgate_calls_total counter");
    for (const [outcome, n] of Object.entries(this.calls)) lines.push(`wsgate_calls_total{outcome="${outcome}"} ${n}`);
    put("wsgate_rpc_pending", "gauge", "Requests waiting for a client and calls waiting for a service.", this.rpcPending);
    return lines.join("\n") + "\n";
  }
}
