// REDIS_URL: which Redis the gateway meets its peers and services on. Supported forms:
//   redis://[user:password@]host[:port][/db]        one server
//   rediss://…                                        the same over TLS (system trust store)
//   redis-sentinel://[user:password@]host:port[,host:port…]/<master>[/db]
//                                                     the master a set of Sentinels names; after a
//                                                     failover the gateway follows the new master
// The credentials are the Redis server's; the Sentinels are asked without any.
// Cluster is not supported: per-user pub/sub channels on a Cluster want sharded pub/sub
// (SSUBSCRIBE), and the mailbox's per-user streams would need hash tags.

export type RedisSettings = {
  /** the URL as given, credentials included: only ever handed to the client */
  url: string;
  /** for logs: the password replaced by *** */
  redacted: string;
  /** redis-sentinel://: where the Sentinels are and which master they watch */
  sentinel: { sentinels: { host: string; port: number }[]; name: string; username?: string; password?: string; db: number } | null;
};

export const REDIS_URL_RULE = /^(rediss?:\/\/[^\s,]+|redis-sentinel:\/\/([^\s@/]*@)?[^\s@/:,]+:\d+(,[^\s@/:,]+:\d+)*\/[A-Za-z0-9_.-]+(\/\d+)?)$/i;
export const REDIS_URL_ERROR =
  "REDIS_URL must be one redis://[user:password@]host[:port][/db] or rediss:// (TLS) URL, or redis-sentinel://[user:password@]host:port[,host:port…]/<master>[/db]";

/** The URL with its password (or a lone userinfo, which Redis reads as the password) hidden. */
export function redactRedisUrl(url: string): string {
  const m = /^([a-z-]+:\/\/)([^@/]*)@(.*)$/i.exec(url);
  if (!m) return url;
  const colon = m[2].indexOf(":");
  return `${m[1]}${colon < 0 ? "***" : m[2].slice(0, colon) + ":***"}@${m[3]}`;
}

export function redisSettings(url: string): RedisSettings {
  return { url, redacted: redactRedisUrl(url), sentinel: /^redis-sentinel:/i.test(url) ? sentinelOf(url) : null };
}

function sentinelOf(url: string): NonNullable<RedisSettings["sentinel"]> {
  const m = /^redis-sentinel:\/\/(?:([^@/]*)@)?([^/]+)\/([^/]+)(?:\/(\d+))?$/i.exec(url)!;
  const [user, pass] = m[1] === undefined ? [undefined, undefined] : m[1].includes(":") ? [m[1].slice(0, m[1].indexOf(":")), m[1].slice(m[1].indexOf(":") + 1)] : [undefined, m[1]];
  const sentinels = m[2].split(",").map((hp) => ({ host: hp.slice(0, hp.lastIndexOf(":")), port: Number(hp.slice(hp.lastIndexOf(":") + 1)) }));
  return {
    sentinels,
    name: m[3],
    username: user ? decodeURIComponent(user) : undefined,
    password: pass ? decodeURIComponent(pass) : undefined,
    db: Number(m[4] ?? 0),
  };
}
