// The Node runtime's pieces for the shared start-up sequence.
import { readFileSync } from "node:fs";
import { log } from "../../app/ops/log.ts";
import { runGateway, type Transport } from "../../app/startup.ts";
import { serveMetrics } from "../metrics-listener.ts";
import { openFilesLimitFromProc } from "../shared/open-files.ts";
import { listenNode } from "./listener.ts";
import { uwsTransport, type WS } from "./transport.ts";
import { type TopicSocket, UwsTopics } from "./topics.ts";
import { loadUws, type Uws } from "./uws.ts";

export async function start() {
  let uWS: Uws;
  try {
    uWS = await loadUws();
  } catch (err) {
    console.error(`wsgate: ${(err as Error).message}`);
    return process.exit(1);
  }
  const readTextFile = (path: string) => readFileSync(path, "utf8");
  const topics = new UwsTopics();
  // Node cannot raise the limit (scripts/start.sh does, with ulimit); read what is in effect.
  const fdLimit = openFilesLimitFromProc(readTextFile, (error) => log("warn", "could not read the open-files limit", { error }));
  return runGateway({
    env: process.env,
    readTextFile,
    exit: (code) => process.exit(code),
    onSignal: (signal, handler) => process.on(signal, handler),
    transport: (): Transport<(WS & TopicSocket) | null> => ({ ...uwsTransport, topics }),
    openFilesLimit: () => fdLimit,
    serveMetrics: (gw) => serveMetrics(gw, (code) => process.exit(code)),
    listen: (ctx) => listenNode(uWS, ctx, fdLimit, topics),
  });
}
