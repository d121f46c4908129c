// Console sessions: a random id in an HttpOnly cookie, held here with its expiry and its
// CSRF token. Kept in memory: a restart signs everyone out, which for an operator's console
// is a fair price for having no signing key to manage.

/** The cookie is scoped to the console's paths only; nothing else on the origin sees it. */
export const COOKIE = "wsgate_admin";
export const COOKIE_PATH = "/admin";
const TTL_MS = 8 * 3600_000;
/** Sign-ins past this evict the oldest session, so a flood of sign-ins cannot grow memory. */
const MAX_SESSIONS = 256;

export type Session = { id: string; csrf: string; expires: number };

export class Sessions {
  private readonly byId = new Map<string, Session>();
  private readonly expected: Promise<Uint8Array>;

  constructor(
    token: string,
    private readonly now: () => number = Date.now,
  ) {
    this.expected = digest(token);
  }

  /** Compares digests over their full length, so neither content nor length leaks through timing. */
  async tokenMatches(given: string): Promise<boolean> {
    const [want, got] = await Promise.all([this.expected, digest(given)]);
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff |= want[i] ^ got[i];
    return diff === 0;
  }

  create(): Session {
    if (this.byId.size >= MAX_SESSIONS) this.byId.delete(this.byId.keys().next().value!);
    const s = { id: randomId(), csrf: randomId(), expires: this.now() + TTL_MS };
    this.byId.set(s.id, s);
    return s;
  }

  /** The live session named by the request's cookie, or null. */
  fromCookie(cookieHeader: string | null | undefined): Session | null {
    const id = readCookie(cookieHeader, COOKIE);
    if (!id) return null;
    const s = this.byId.get(id);
    if (!s) return null;
    if (s.expires <= this.now()) {
      this.byId.delete(id);
      return null;
    }
    return s;
  }

  end(s: Session) {
    this.byId.delete(s.id);
  }

  cookie(s: Session, secure: boolean): string {
    return `${COOKIE}=${s.id}; Path=${COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(TTL_MS / 1000)}${secure ? "; Secure" : ""}`;
  }

  clearCookie(secure: boolean): string {
    return `${COOKIE}=; Path=${COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age=0${secure ? "; Secure" : ""}`;
  }
}

/** CSRF tokens are compared as strings of equal, fixed length; timing reveals nothing useful across a random 256-bit value per session. */
export function csrfMatches(s: Session, given: string | null | undefined): boolean {
  if (!given || given.length !== s.csrf.length) return false;
  let diff = 0;
  for (let i = 0; i < given.length; i++) diff |= given.charCodeAt(i) ^ s.csrf.charCodeAt(i);
  return diff === 0;
}

function readCookie(header: string | null | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(32));
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

async function digest(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
}
