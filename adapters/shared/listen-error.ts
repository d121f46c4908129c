// The three runtimes report a failed listen differently (Bun and Deno throw an error with
// an errno name in `code`, uWS only returns false); the operator gets one line either way.
import { ListenError } from "../../app/startup.ts";

/** Reduces a runtime's listen error to "EADDRINUSE (address already in use)" or its message. */
export function listenError(err: unknown): ListenError {
  if (err instanceof ListenError) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === "string" ? e.message.split("\n")[0] : String(err);
  const code = typeof e?.code === "string" && /^E[A-Z]+$/.test(e.code) ? e.code : "";
  if (!code) return new ListenError(message);
  return new ListenError(message.includes(code) ? message : `${code} (${message})`);
}
