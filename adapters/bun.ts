// Entry for Bun and the compiled binary: the command line first, and `serve` (the default)
// starts the gateway. Nothing runs when the file is imported.
import { runCli } from "./cli.ts";
import { start } from "./bun/start.ts";

export { start };
if (import.meta.main) {
  const status = await runCli(process.argv.slice(2), { serve: start });
  if (status !== undefined) process.exit(status);
}
