// REDIS_URL: which Redis the gateway meets its peers and services on. Supported forms:
//   redis://[user:password@]host[:port][/db]     one server
//   rediss://…                                     the same over TLS (system trust store)
// Sentinel and Cluster are not supported here: per-user pub/sub channels on a Cluster want
// sharded pub/sub (SSUBSCRIBE), and the mailbox's per-user streams would need hash tags.

export type RedisSettings = {
  /** the URL as given, credentials included: only ever handed to the client */
  url: string;
  /** for logs: the password replaced by *** */
  redacted: string;
};

export const REDIS_URL_RULE = /^rediss?:\/\/[^\s,]+$/i;
export const REDIS_URL_ERROR = "REDIS_URL must be one redis://[user:password@]host[:port][/db] or rediss:// (TLS) URL";

/** The URL with its password (or a lone userinfo, which Redis reads as the password) hidden. */
export function redactRedisUrl(url: string): string {
  const m = /^([a-z]+:\/\/)([^@/]*)@(.*)$/i.exec(url);
  if (!m) return url;
  const colon = m[2].indexOf(":");
  return `${m[1]}${colon < 0 ? "***" : m[2].slice(0, colon) + ":***"}@${m[3]}`;
}

export function redisSettings(url: string): RedisSettings {
  return { url, redacted: redactRedisUrl(url) };
}
