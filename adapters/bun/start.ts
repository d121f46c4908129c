// The Bun runtime's pieces for the shared start-up sequence.
import { runGateway, type Transport } from "../../app/startup.ts";
import { processPieces } from "../shared/process-pieces.ts";
import { listenBun } from "./listener.ts";
import { type BunSocket, bunTransport } from "./transport.ts";
import { BunTopics, type TopicSocket } from "./topics.ts";

export function start() {
  const topics = new BunTopics();
  const pieces = processPieces();
  return runGateway({
    ...pieces,
    transport: (): Transport<BunSocket & TopicSocket> => ({ ...bunTransport(), topics }),
    listen: (ctx) => listenBun(ctx, pieces.fdLimit, topics),
  });
}
