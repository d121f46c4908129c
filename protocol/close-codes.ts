// Every close code the gateway sends, in one place. `reconnect` tells a client
// (and the SDK) whether coming back can succeed.
export const CLOSE = {
  /** Node is shutting down or draining: reconnect at once, the load balancer picks another node. */
  GOING_AWAY: { code: 1001, reason: "node draining", reconnect: true },
  /** Client broke the protocol or a rate rule: reconnect only after fixing the behaviour (backoff). */
  POLICY: { code: 1008, reason: "policy violation", reconnect: true },
  /** Client sent a frame over WSGATE_MAX_MESSAGE_BYTES: do not resend the same frame. */
  TOO_BIG: { code: 1009, reason: "message too big", reconnect: true },
  /** Unexpected server error: reconnect with backoff. */
  INTERNAL: { code: 1011, reason: "internal error", reconnect: true },
  /** Node is at its connection cap: reconnect with backoff, ideally to another node. */
  TRY_AGAIN: { code: 1013, reason: "node full, try again later", reconnect: true },
  /** Client sent frames faster than WSGATE_MAX_MSGS_PER_SEC allows: reconnect after a backoff, then send slower. */
  RATE_LIMITED: { code: 1008, reason: "message rate over limit", reconnect: true },
  /** The user already holds WSGATE_MAX_CONNS_PER_USER sockets on this node: close one first; do not retry in a loop. */
  USER_FULL: { code: 1008, reason: "too many connections for this user", reconnect: false },
  /** The token's exp has passed: reconnect at once with a fresh token (the SDK refreshes before exp). */
  TOKEN_EXPIRED: { code: 4001, reason: "token expired", reconnect: true },
  /**
   * The client read too slowly: its outbound buffer passed WSGATE_MAX_BUFFERED_BYTES. Reconnect
   * (with the mailbox on, missed messages come from it) and read faster.
   */
  SLOW_CONSUMER: { code: 4002, reason: "slow consumer: outbound buffer over limit", reconnect: true },
} as const;

export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];
