// Entry for Deno: starts the gateway when run, not when imported.
import { start } from "./deno/start.ts";

export { start };
if (import.meta.main) await start();
