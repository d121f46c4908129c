// The Deno runtime's pieces for the shared start-up sequence. Deno runs with no FFI and no
// /proc access (see scripts/start.sh): the open-files limit comes from start.sh.
import { log } from "../../app/ops/log.ts";
import { runGateway } from "../../app/startup.ts";
import { serveMetrics } from "../metrics-listener.ts";
import { openFilesLimitFromEnv } from "../shared/open-files.ts";
import { listenDeno } from "./listener.ts";
import { abortDenoSocket, denoTransport } from "./transport.ts";

export function start() {
  const env = Deno.env.toObject();
  return runGateway({
    env,
    readTextFile: (path) => Deno.readTextFileSync(path),
    exit: (code) => Deno.exit(code),
    onSignal: (signal, handler) => Deno.addSignalListener(signal, handler),
    transport: (config) => denoTransport(Math.min(1024 * 1024, config.maxBufferedBytes), abortDenoSocket),
    openFilesLimit() {
      const limit = openFilesLimitFromEnv(env.WSGATE_OPEN_FILES_LIMIT);
      if (!limit) log("warn", "open-files limit unknown: start Deno through scripts/start.sh, or set WSGATE_OPEN_FILES_LIMIT to `ulimit -n`");
      return limit;
    },
    serveMetrics: (gw) => serveMetrics(gw, (code) => Deno.exit(code)),
    listen: listenDeno,
  });
}
