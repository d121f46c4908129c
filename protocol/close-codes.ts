// Every close code the gateway sends, and whether a client may come back after it.
// The decision is carried by the number alone, so any client (the SDK, a browser app,
// websocat in a script) can make it without reading the reason text:
//
//   code  name                    reason (as sent)                          reconnect
//   1001  GOING_AWAY              node draining                             yes, at once: the load balancer picks another node
//   1009  TOO_BIG                 message too big                           yes, without resending that frame
//   1011  INTERNAL                internal error / broker unavailable       yes, with backoff
//   1013  TRY_AGAIN               node full, try again later                yes, with backoff, ideally to another node
//   4001  TOKEN_EXPIRED           token expired                             yes, at once, with a fresh token
//   4002  SLOW_CONSUMER           slow consumer: outbound buffer over limit yes; read faster (the mailbox resends what was missed)
//   4003  RATE_LIMITED            message rate over limit                   yes, with backoff; then send slower
//   4004  DISCONNECTED_RECONNECT  disconnected by a service                 yes, with backoff
//   4100  USER_FULL               too many connections for this user        no: close another socket of the user first
//   4101  DISCONNECTED_TERMINAL   disconnected by a service for good        no: the session was revoked or the user banned
//
// Ranges: 4000-4099 means "reconnect allowed", 4100-4199 means "terminal: never reconnect
// on your own". New codes go into the range that states their decision; codes the gateway
// does not send (1000 normal, 1005 no status, 1006 abnormal: a dropped connection, a proxy,
// a crashed node) reconnect with backoff, since nothing said the client must stay away.

export const CLOSE = {
  GOING_AWAY: { code: 1001, reason: "node draining" },
  TOO_BIG: { code: 1009, reason: "message too big" },
  INTERNAL: { code: 1011, reason: "internal error" },
  TRY_AGAIN: { code: 1013, reason: "node full, try again later" },
  TOKEN_EXPIRED: { code: 4001, reason: "token expired" },
  SLOW_CONSUMER: { code: 4002, reason: "slow consumer: outbound buffer over limit" },
  RATE_LIMITED: { code: 4003, reason: "message rate over limit" },
  DISCONNECTED_RECONNECT: { code: 4004, reason: "disconnected by a service" },
  USER_FULL: { code: 4100, reason: "too many connections for this user" },
  DISCONNECTED_TERMINAL: { code: 4101, reason: "disconnected by a service for good" },
} as const;

export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];

/** Codes a client may come back after: the gateway's own retry range. */
export const RECONNECT_RANGE = { min: 4000, max: 4099 } as const;
/** Codes after which a client must not reconnect by itself. */
export const TERMINAL_RANGE = { min: 4100, max: 4199 } as const;

/** Whether a client may reconnect after a close with this code; decided by the number only. */
export function shouldReconnect(code: number): boolean {
  return code < TERMINAL_RANGE.min || code > TERMINAL_RANGE.max;
}

/** Codes after which coming back at once is right: the reason was the node or the token, not the client's pace. */
export function reconnectAtOnce(code: number): boolean {
  return code === CLOSE.GOING_AWAY.code || code === CLOSE.TOKEN_EXPIRED.code;
}
