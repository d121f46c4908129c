// The start-up pieces Bun and Node get the same way, from `process` and node:fs: the
// environment, file reads, exit, signals, the open-files limit and the /metrics listener.
// The runtime's own pieces (transport, listen) are added by each adapter's start().
import { readFileSync } from "node:fs";
import { log } from "../../app/ops/log.ts";
import type { RuntimePieces } from "../../app/startup.ts";
import { serveMetrics } from "../metrics-listener.ts";
import { openFilesLimitFromProc } from "./open-files.ts";

export type ProcessPieces = Omit<RuntimePieces<unknown>, "transport" | "listen"> & { fdLimit: number };

export function processPieces(): ProcessPieces {
  const readTextFile = (path: string) => readFileSync(path, "utf8");
  // Read once: Bun raised the soft limit to the hard one itself, Node got it from scripts/start.sh's ulimit.
  const fdLimit = openFilesLimitFromProc(readTextFile, (error) => log("warn", "could not read the open-files limit", { error }));
  return {
    env: process.env,
    readTextFile,
    exit: (code) => process.exit(code),
    onSignal: (signal, handler) => process.on(signal, handler),
    openFilesLimit: () => fdLimit,
    serveMetrics: (gw) => serveMetrics(gw, (code) => process.exit(code)),
    fdLimit,
  };
}
