// `bun scripts/supervise.ts <command...>`: runs WSGATE_WORKERS copies of the command under
// the supervisor (scripts/start.sh uses it for every runtime). Exits when all have stopped.
import { superviseWorkers } from "../adapters/supervisor.ts";

const command = process.argv.slice(2);
const workers = Number(process.env.WSGATE_WORKERS ?? "1");
if (command.length === 0 || !(workers >= 1)) {
  console.error("usage: WSGATE_WORKERS=N scripts/supervise.ts <command...>");
  process.exit(2);
}
const nodeId = process.env.WSGATE_NODE_ID || "n" + crypto.randomUUID().replaceAll("-", "").slice(0, 12);
process.exit(await superviseWorkers({ workers, command, env: process.env, nodeId }));
