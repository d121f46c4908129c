// How the gateway connects to NATS (credentials and TLS from the link) and what it tells an
// operator when that fails.
import { credsAuthenticator, errors, nkeyAuthenticator } from "@nats-io/transport-node";
import type { ConnectionOptions } from "@nats-io/transport-node";
import type { NatsLink } from "./nats-link.ts";

/** nats.js options from the link: credentials as options (never in the servers list), TLS from PEM texts. */
export function connectOptions(link: NatsLink, name: string): ConnectionOptions {
  const o: ConnectionOptions = {
    servers: link.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
    timeout: 3_000,
    // A request would otherwise make an Error for its stack up front: one per mailbox cursor load.
    noAsyncTraces: true,
  };
  const a = link.auth;
  const bytes = (s: string) => new TextEncoder().encode(s);
  if (a.kind === "user") Object.assign(o, { user: a.user, pass: a.pass });
  else if (a.kind === "token") o.token = a.token;
  else if (a.kind === "nkey") o.authenticator = nkeyAuthenticator(bytes(a.seed));
  else if (a.kind === "creds") o.authenticator = credsAuthenticator(bytes(a.creds));
  if (link.tls) o.tls = { ...link.tls };
  return o;
}

/** One log line an operator can act on for a failed connect; the error texts carry no secret (nats.js never sees one in a URL). */
export function connectFailure(err: unknown, link: NatsLink): { message: string; level: "warn" | "error"; fields: Record<string, string> } {
  if (err instanceof errors.AuthorizationError || /authori[sz]ation|authentication/i.test(String(err))) {
    return { message: "nats refused the gateway's credentials; retrying", level: "error", fields: { auth: link.describe.auth } };
  }
  if (/certificate|tls|ssl|self.signed/i.test(String(err))) {
    return { message: "nats TLS failed; retrying", level: "error", fields: { tls: link.describe.tls } };
  }
  // TLS 1.3 reports a refused client certificate after the handshake; nats.js then only sees silence.
  if (err instanceof errors.TimeoutError && link.tls && !link.tls.cert) {
    return { message: "nats unreachable; retrying", level: "warn", fields: { hint: "no answer over TLS: does the server require a client certificate (NATS_TLS_CERT, NATS_TLS_KEY)?" } };
  }
  return { message: "nats unreachable; retrying", level: "warn", fields: {} };
}
