// Which uWebSockets.js build loads depends on Node's ABI and on the C library. No npm
// package covers Node 20, 22 and 24 on every glibc (see the README, Runtimes):
//   @btc-vision/uwebsockets.js  uWS v20.57, Node 20/22/24/25, needs glibc >= 2.38
//   uws-pack                    uWS v20 (older), Node 20/22, glibc >= 2.27 (Debian 12)
// The current build is tried first; the older one covers older distributions.
import { createRequire } from "node:module";
import type * as UWS from "@btc-vision/uwebsockets.js";

export type Uws = typeof UWS;
/** A build's module: uWS itself as the default export (CommonJS), or its named exports (uws-pack is ESM only). */
type Importer = (name: string) => Promise<object>;

const BUILDS = ["@btc-vision/uwebsockets.js", "uws-pack"] as const;
const require = createRequire(import.meta.url);
// The CommonJS build through require(): on Node 20 a CommonJS module that throws while
// loading through import() takes the process down instead of rejecting (a missing glibc
// symbol does). uws-pack is ESM only.
const importBuild: Importer = async (name) => (name === BUILDS[0] ? { default: require(name) } : import("uws-pack"));

/** Modules of the older build (uws-pack): see corksAsyncUpgrades. */
const older = new WeakSet<object>();

/**
 * Whether an upgrade finished after an await goes through res.cork(). Current uWS wants every
 * write from outside its callbacks corked (and warns otherwise); the older build, corked,
 * sometimes dropped such a socket right after the client saw it open (measured: 2 of 9 runs of
 * 60 token-checked upgrades on Node 20, always the 29th; uncorked, 0 of 11 runs).
 */
export function corksAsyncUpgrades(uWS: Uws): boolean {
  return !older.has(uWS);
}

/** The first build that loads; an error naming each build's cause when none does. */
export async function loadUws(importer: Importer = importBuild): Promise<Uws> {
  const causes: string[] = [];
  for (const name of BUILDS) {
    try {
      const mod = await importer(name);
      const uWS = ("default" in mod ? mod.default : mod) as Uws;
      if (name === "uws-pack") older.add(uWS);
      return uWS;
    } catch (err) {
      // The packages wrap the loader's error in a paragraph; its last "Error:" line is the cause.
      const lines = String(err).split("\n");
      causes.push(`${name}: ${lines.findLast((l) => l.startsWith("Error: "))?.slice(7) ?? lines[0]}`);
    }
  }
  throw new Error(`no uWebSockets.js build loads on Node ${process.version} (ABI ${process.versions.modules}): ${causes.join("; ")}`);
}
