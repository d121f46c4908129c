// The Node runtime's pieces for the shared start-up sequence.
import { runGateway, type Transport } from "../../app/startup.ts";
import { processPieces } from "../shared/process-pieces.ts";
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
  const topics = new UwsTopics();
  const pieces = processPieces();
  return runGateway({
    ...pieces,
    transport: (): Transport<(WS & TopicSocket) | null> => ({ ...uwsTransport, topics }),
    listen: (ctx) => listenNode(uWS, ctx, pieces.fdLimit, topics),
  });
}
