// Entry for Bun and the compiled binary: starts the gateway when run, not when imported.
import { start } from "./bun/start.ts";

export { start };
if (import.meta.main) await start();
