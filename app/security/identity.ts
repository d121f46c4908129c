// Development-mode identity: plain `service` and `user` cookies.
// Both become NATS subject tokens, so they are checked after decoding and refused
// before any upgrade when they could widen a subscription (dots, wildcards, spaces).
import { idError, isId } from "../../protocol/ids.ts";

/**
 * `exp` (seconds since the epoch) is set when the identity came from a token that expires;
 * `groups` when the token's `groups` claim joins the connection to groups for its lifetime.
 */
export type Identity = { svc: string; user: string; exp?: number; groups?: readonly string[] };
export type IdentityError = { status: 400 | 401 | 403; error: string };

const COOKIES = { svc: "service", user: "user" } as const;

export function identityFromCookies(header: string | null | undefined): Identity | IdentityError {
  const ids: string[] = [];
  for (const name of [COOKIES.svc, COOKIES.user]) {
    const value = readCookie(header, name);
    if (value === undefined) return { status: 401, error: `cookie ${name} is missing` };
    if (typeof value !== "string") return value;
    if (!isId(value)) return { status: 400, error: `cookie ${name} is invalid: ${idError("it")}` };
    ids.push(value);
  }
  return { svc: ids[0], user: ids[1] };
}

/** One cookie's value: undefined when absent, an error when given twice with different values. */
export function readCookie(header: string | null | undefined, name: string): string | IdentityError | undefined {
  let found: string | undefined;
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      value = decodeURIComponent(value);
    } catch {
      return { status: 400, error: `cookie ${name} is not valid percent-encoding` };
    }
    if (found !== undefined && found !== value) return { status: 400, error: `cookie ${name} is given twice with different values` };
    found = value;
  }
  return found;
}

export function isIdentityError(x: Identity | IdentityError): x is IdentityError {
  return "error" in x;
}
