// Who may use the console: a signed-in session for everything but the sign-in page, and
// for anything that changes state, proof that the request comes from the console's own
// page: same-origin (Origin, else Sec-Fetch-Site) and the session's CSRF token.
import type { Context } from "hono";
import { csrfMatches, type Session, type Sessions } from "./session.ts";

export const CSRF_HEADER = "x-wsgate-csrf";

/**
 * Whether a state-changing request comes from this origin. Browsers send Origin on every
 * cross-origin POST (and Sec-Fetch-Site on all of them), so a request from another site is
 * told apart even where SameSite does not apply (another port of the same host).
 */
export function sameOrigin(req: Request): boolean {
  const origin = req.headers.get("origin");
  if (origin !== null) {
    if (origin === "null") return false;
    let from: string;
    try {
      from = new URL(origin).host;
    } catch {
      return false;
    }
    // Behind a proxy that rewrites Host, the browser's host arrives as X-Forwarded-Host. A
    // page on another site cannot set that header on a form post (it would need CORS).
    const forwarded = req.headers.get("x-forwarded-host")?.split(",")[0].trim();
    return from === (req.headers.get("host") ?? new URL(req.url).host) || from === forwarded;
  }
  const site = req.headers.get("sec-fetch-site");
  return site === null || site === "same-origin" || site === "none";
}

/** The session, or the refusal: 401 without one, 403 when a state change is not provably the console's own. */
export async function guard(c: Context, sessions: Sessions, change: boolean): Promise<Session | Response> {
  if (change && !sameOrigin(c.req.raw)) return c.json({ error: "cross-site request refused" }, 403);
  const s = sessions.fromCookie(c.req.header("cookie"));
  if (!s) return c.json({ error: "sign in first (POST /admin/signin)" }, 401);
  if (!change) return s;
  let given = c.req.header(CSRF_HEADER) ?? null;
  if (given === null && (c.req.header("content-type") ?? "").startsWith("application/x-www-form-urlencoded")) {
    const form = await c.req.parseBody();
    given = typeof form.csrf === "string" ? form.csrf : null;
  }
  if (!csrfMatches(s, given)) return c.json({ error: `missing or wrong CSRF token (${CSRF_HEADER} header or csrf form field)` }, 403);
  return s;
}
