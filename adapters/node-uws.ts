// Entry for Node (bundled to dist/node-uws.mjs by scripts/start.sh): starts the gateway
// when run, not when imported.
import { pathToFileURL } from "node:url";
import { start } from "./node/start.ts";

export { start };
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await start();
