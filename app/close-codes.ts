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
} as const;

export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];
