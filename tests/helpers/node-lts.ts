// Node LTS binaries for running the Node adapter on more than the machine's own Node.
// Installed from npm (the `node` package, pinned) on first use under node_modules/.cache,
// not as dev dependencies: the `node` package links node_modules/.bin/node, which would
// silently change the Node that every npm script runs.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./procs.ts";

/** The Node lines the Node adapter is tested on besides the machine's own. */
export const NODE_LTS = { 22: "22.23.3", 24: "24.21.0" } as const;

/** `unloadable`: this Node installs but no uWS build loads on it here (the glibc is too old): the adapter must say so. */
export type NodeLts = { major: number; bin: string; unloadable?: string };

export function nodeLts(major: keyof typeof NODE_LTS): NodeLts {
  const prefix = join(ROOT, "node_modules", ".cache", "node-lts", String(major));
  const bin = join(prefix, "node_modules", "node", "bin", "node");
  if (!existsSync(bin)) {
    const npm = Bun.spawnSync(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", prefix, `node@${NODE_LTS[major]}`], { stdout: "pipe", stderr: "pipe" });
    if (!existsSync(bin)) throw new Error(`npm could not install node@${NODE_LTS[major]}: ${npm.stderr.toString().trim().split("\n").pop()}`);
  }
  // The same builds, in the same order, as adapters/node/uws.ts: which one loads decides what is tested.
  const probe = Bun.spawnSync(
    [bin, "-e", "try { require('@btc-vision/uwebsockets.js') } catch (e) { import('uws-pack').catch((f) => { console.error(String(e).split('\\n').findLast((l) => l.startsWith('Error: '))); process.exit(1) }) }"],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  if (probe.exitCode !== 0) return { major, bin, unloadable: probe.stderr.toString().trim() };
  return { major, bin };
}
