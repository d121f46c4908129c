// What travels on the socket: client frames as JSON, payloads as text or base64, the URL
// with its token.
import type { ClientFrame } from "../protocol/envelope.ts";
import type { Data, DataInput } from "./types.ts";

/** Every frame the client sends is one of the protocol's. */
export function frame(f: ClientFrame): string {
  return JSON.stringify(f);
}

export function resolveUrl(url: string): string {
  const loc = (globalThis as { location?: { protocol: string; host: string } }).location;
  if (!url.startsWith("/") || !loc) return url;
  return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + url;
}

export function withToken(url: string, token: string | undefined, param: string): string {
  if (!token) return url;
  const u = new URL(url);
  u.searchParams.set(param, token);
  return u.toString();
}

export function encode(d: DataInput): { data: string; encoding?: "base64" } {
  if (typeof d === "string") return { data: d };
  const bytes = d instanceof Uint8Array ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  return { data: btoa(s), encoding: "base64" };
}

export function decode(f: { data?: unknown; encoding?: unknown }): Data {
  const data = typeof f.data === "string" ? f.data : "";
  if (f.encoding !== "base64") return data;
  const bin = atob(data);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
