// Who may talk to the gateway besides its WebSocket users: which web pages may open
// sockets (Origin allowlist against cross-site WebSocket hijacking), and which callers
// may use the HTTP service API (publish, embedded-mode event stream).

/**
 * Browsers always send Origin on a WebSocket upgrade; other clients usually do not.
 * A request without Origin is therefore not a cross-site page and is allowed.
 */
export class OriginPolicy {
  private readonly exact = new Set<string>();
  /** `https://*.example.com` → ["https:", ".example.com", port] */
  private readonly wildcard: { protocol: string; suffix: string; port: string }[] = [];

  constructor(readonly allowed: string[] | undefined) {
    for (const entry of allowed ?? []) {
      const star = entry.indexOf("://*.");
      if (star >= 0) {
        const u = new URL(entry.replace("://*.", "://x."));
        this.wildcard.push({ protocol: u.protocol, suffix: u.hostname.slice(1), port: u.port });
      } else {
        this.exact.add(new URL(entry).origin);
      }
    }
  }

  get enabled(): boolean {
    return this.allowed !== undefined;
  }

  allows(origin: string | null | undefined): boolean {
    if (origin === null || origin === undefined || !this.enabled) return true;
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return false; // includes "null" (sandboxed frames, file: pages)
    }
    // An Origin is scheme://host[:port] and nothing else; anything more is not a browser's.
    if (u.origin === "null" || u.pathname !== "/" || u.search || u.hash || u.username || u.password) return false;
    if (this.exact.has(u.origin)) return true;
    for (const w of this.wildcard) {
      if (u.protocol === w.protocol && u.port === w.port && u.hostname.endsWith(w.suffix) && u.hostname.length > w.suffix.length) return true;
    }
    return false;
  }
}

/**
 * Bearer token for the service API. Compared as SHA-256 digests with a full-length XOR,
 * so neither the content nor the length of the configured token leaks through timing.
 */
export class ServiceToken {
  private readonly expected: Promise<Uint8Array> | null;

  constructor(token: string | undefined) {
    this.expected = token ? digest(token) : null;
  }

  get configured(): boolean {
    return this.expected !== null;
  }

  async check(authorization: string | null | undefined): Promise<boolean> {
    if (!this.expected || !authorization) return false;
    const m = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!m) return false;
    const [want, got] = await Promise.all([this.expected, digest(m[1])]);
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff |= want[i] ^ got[i];
    return diff === 0;
  }
}

async function digest(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
}
