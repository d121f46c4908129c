// The Bun runtime's pieces for the shared start-up sequence.
import { readFileSync } from "node:fs";
import { log } from "../../app/ops/log.ts";
import { runGateway, type Transport } from "../../app/startup.ts";
import { serveMetrics } from "../metrics-listener.ts";
import { openFilesLimitFromProc } from "../shared/open-files.ts";
import { listenBun } from "./listener.ts";
import { type BunSocket, bunTransport } from "./transport.ts";
import { BunTopics, type TopicSocket } from "./topics.ts";

export function start() {
  const readTextFile = (path: string) => readFileSync(path, "utf8");
  // Bun raises the soft open-files limit to the hard one itself at start.
  const topics = new BunTopics();
  const fdLimit = openFilesLimitFromProc(readTextFile, (error) => log("warn", "could not read the open-files limit", { error }));
  return runGateway({
    env: process.env,
    readTextFile,
    exit: (code) => process.exit(code),
    onSignal: (signal, handler) => process.on(signal, handler),
    transport: (): Transport<BunSocket & TopicSocket> => ({ ...bunTransport(), topics }),
    openFilesLimit: () => fdLimit,
    serveMetrics: (gw) => serveMetrics(gw, (code) => process.exit(code)),
    listen: (ctx) => listenBun(ctx, fdLimit, topics),
  });
}
