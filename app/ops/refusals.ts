// WSGATE_LOG_LEVEL=debug: every refused upgrade with its status and reason, to find out why
// one client cannot connect. At any other level the handler runs unwrapped per request.
import type { Context } from "hono";
import { log, logEnabled } from "./log.ts";

type Handler<C extends Context> = (c: C) => Response | Promise<Response>;

export function logRefusals<C extends Context>(handler: Handler<C>): Handler<C> {
  return (c) => {
    if (!logEnabled("debug")) return handler(c);
    const r = handler(c);
    return r instanceof Promise ? r.then((res) => logged(c, res)) : logged(c, r);
  };
}

function logged<C extends Context>(c: C, res: Response): Response {
  // A successful upgrade answers nothing (Bun), 101, or an adapter's private marker below 400.
  if (res && res.status >= 400) {
    void res
      .clone()
      .text()
      .then((why) => log("debug", "upgrade refused", { status: res.status, reason: why.trim(), path: c.req.path, origin: c.req.header("origin") }));
  }
  return res;
}
