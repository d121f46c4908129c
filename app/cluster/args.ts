// The checks every cluster API applies, over HTTP and over NATS alike: one message per
// bad part, naming it.
import { idError, isId } from "../../protocol/ids.ts";
import { CONN_ID_PATTERN, connIdError } from "./connid.ts";
import type { DisconnectMode } from "./control.ts";
import { PAGE_DEFAULT, PAGE_MAX } from "./presence.ts";

export type Bad = { error: string; status: 400 };

export function badIds(parts: Record<string, string | undefined>): Bad | null {
  for (const k in parts) {
    const v = parts[k];
    if (v === undefined) continue;
    if (k === "conn" ? !CONN_ID_PATTERN.test(v) : !isId(v)) return { error: k === "conn" ? connIdError() : idError(k), status: 400 };
  }
  return null;
}

export function parseMode(v: string | null | undefined): DisconnectMode | Bad {
  if (v === undefined || v === null || v === "" || v === "reconnect") return "reconnect";
  if (v === "terminal") return "terminal";
  return { error: "mode must be terminal or reconnect", status: 400 };
}

export function parsePage(limit: string | null | undefined, after: string | null | undefined): { limit: number; after: string } | Bad {
  let n = PAGE_DEFAULT;
  if (limit !== undefined && limit !== null && limit !== "") {
    if (!/^\d{1,9}$/.test(limit) || Number(limit) < 1) return { error: `limit must be a whole number from 1 to ${PAGE_MAX}`, status: 400 };
    n = Number(limit);
    if (n > PAGE_MAX) return { error: `limit must be at most ${PAGE_MAX}`, status: 400 };
  }
  const a = after ?? "";
  if (a !== "" && !isId(a)) return { error: idError("after"), status: 400 };
  return { limit: n, after: a };
}

export function isBad(v: unknown): v is Bad {
  return typeof v === "object" && v !== null && "error" in v && (v as Bad).status === 400;
}
