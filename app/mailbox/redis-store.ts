// The durable mailbox on Redis Streams (WSGATE_MAILBOX=on with REDIS_URL):
//  - one stream per user, `<prefix>.mailbox.<svc>.<user>`, fields `data` and `frame`;
//  - a message is stored and announced by one server-side function, `wsgate_send`: XADD, then
//    PUBLISH on `<prefix>.live.<svc>.<user>` with the new sequence and the user's previous one,
//    so no message is stored but never announced, or announced before it can be read;
//  - how far delivery got is a plain key per user, `<prefix>.cursor.<svc>.<user>`.
// Services store a message for a user with `FCALL wsgate_send 1 <prefix>.mailbox.<svc>.<user> <data> [binary]`
// (or the HTTP publish API); the gateway loads the function on every connection.
//
// Sequences: the envelope's `seq` is a number; a stream id `<ms>-<n>` maps to `ms * 1000 + n`.
// The function keeps n below 1000 (a 1001st message within one millisecond moves to the next
// one), so the mapping is ordered and reversible, and exact in a double until the year 2255.
import type { Redis } from "ioredis";
import { parseFrameHint } from "../broker/broker.ts";
import type { Subjects } from "../core/subjects.ts";
import type { MailboxConfig } from "../ops/config.ts";
import type { MailboxStoreApi, StoredMessage } from "./store-api.ts";

const decoder = new TextDecoder();
/** Messages one read of a user's stream fetches; the rest wait in `ahead` for the next calls. */
const READ_BATCH = 64;
/** Bytes of read-ahead kept at most over all users (a user who left mid-read leaves an entry behind). */
const AHEAD_MAX_BYTES = 8 * 1024 * 1024;

/** The stream id a sequence maps to. */
export function idOf(seq: number): string {
  return `${Math.floor(seq / 1000)}-${seq % 1000}`;
}

/** The sequence of a stream id. */
export function seqOf(id: string): number {
  const dash = id.indexOf("-");
  return Number(id.slice(0, dash)) * 1000 + Number(id.slice(dash + 1));
}

/** The function library, with this gateway's prefix and limits written in. */
export function library(mailboxPrefix: string, livePrefix: string, c: MailboxConfig): string {
  return `#!lua name=wsgate
local MAILBOX = ${JSON.stringify(mailboxPrefix)}
local LIVE = ${JSON.stringify(livePrefix)}
local MAXLEN = ${c.maxPerUser}
local MAXAGE_MS = ${c.maxAgeS * 1000}

local function seq_of(id)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  return ms .. string.format('%03d', tonumber(n))
end

local function send(keys, args)
  local key = keys[1]
  if string.sub(key, 1, #MAILBOX) ~= MAILBOX then
    return redis.error_reply('wsgate_send: the key must be ' .. MAILBOX .. '<svc>.<user>')
  end
  local data = args[1]
  if data == nil then return redis.error_reply('wsgate_send: the message is missing') end
  local hint = args[2] or ''
  if hint ~= '' and hint ~= 'text' and hint ~= 'binary' then
    return redis.error_reply('wsgate_send: the frame type must be text or binary')
  end
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local prev = '0'
  if #last > 0 then prev = seq_of(last[1][1]) end
  local id = redis.call('XADD', key, '*', 'data', data, 'frame', hint)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  if tonumber(n) > 999 then
    redis.call('XDEL', key, id)
    ms = string.format('%d', tonumber(ms) + 1)
    id = redis.call('XADD', key, ms .. '-0', 'data', data, 'frame', hint)
  end
  if MAXLEN > 0 then redis.call('XTRIM', key, 'MAXLEN', MAXLEN) end
  redis.call('XTRIM', key, 'MINID', string.format('%d', tonumber(ms) - MAXAGE_MS))
  redis.call('PEXPIRE', key, MAXAGE_MS)
  local seq = seq_of(id)
  local head = 'WSGATE/1\\r\\nWs-Seq: ' .. seq .. '\\r\\nWs-Prev: ' .. prev .. '\\r\\n'
  if hint ~= '' then head = head .. 'Ws-Frame: ' .. hint .. '\\r\\n' end
  redis.call('PUBLISH', LIVE .. string.sub(key, #MAILBOX + 1), head .. '\\r\\n' .. data)
  return seq
end

redis.register_function('wsgate_send', send)
`;
}

export class RedisMailboxStore implements MailboxStoreApi {
  private client: Redis | null = null;
  /** each user's messages sit in a stream of their own: nothing to share between catch-ups */
  readonly shared = null;
  private readonly mailboxPrefix: string;
  private readonly cursorPrefix: string;
  private readonly source: string;
  /**
   * Messages read ahead per user, with the sequence their read started from: a backlog is
   * read in batches, not a round trip per message. Read without consuming, as a user's
   * catch-up and one socket's resume may read the same user at different points.
   */
  private ahead = new Map<string, { from: number; list: StoredMessage[]; bytes: number }>();
  private aheadBytes = 0;

  constructor(
    readonly config: MailboxConfig,
    subjects: Subjects,
  ) {
    const livePrefix = subjects.live("", "").slice(0, -1);
    this.mailboxPrefix = livePrefix.slice(0, -"live.".length) + "mailbox.";
    this.cursorPrefix = subjects.cursor("", "").slice(0, -1);
    this.source = library(this.mailboxPrefix, livePrefix, config);
  }

  /** Loads the function on each (new) connection: a restarted Redis without persistence has lost it. */
  async attach(connection: unknown): Promise<void> {
    const client = connection as Redis;
    try {
      await client.function("LOAD", "REPLACE", this.source);
    } catch (err) {
      throw new Error(`the mailbox needs Redis 7 or later (FUNCTION LOAD), or set WSGATE_MAILBOX=off: ${err}`);
    }
    this.client = client;
  }

  async loadCursor(svcUser: string): Promise<number> {
    const v = await this.api().get(this.cursorPrefix + svcUser);
    const n = Number(v);
    return v && Number.isSafeInteger(n) && n > 0 ? n : 0;
  }

  saveCursor(svcUser: string, seq: number): void {
    // A cursor outlives the messages it points past, so an expired cursor never makes a kept backlog look undelivered.
    this.client?.set(this.cursorPrefix + svcUser, String(seq), "PX", 2 * this.config.maxAgeS * 1000).catch(() => {});
  }

  /**
   * Served from the messages read ahead when they reach `fromSeq`; otherwise one XRANGE reads
   * the next batch. An empty read-ahead always asks Redis, so a message stored since is found.
   */
  async next(svcUser: string, fromSeq: number): Promise<StoredMessage | null> {
    const kept = this.ahead.get(svcUser);
    if (kept) {
      const list = kept.list;
      if (fromSeq >= kept.from && fromSeq <= list[list.length - 1].seq) {
        let i = 0;
        while (list[i].seq < fromSeq) i++;
        // The last one read ahead handed out: nothing is left to serve from this batch.
        if (i === list.length - 1) this.forget(svcUser);
        return list[i];
      }
      this.forget(svcUser);
    }
    const r = await this.api().xrangeBuffer(this.mailboxPrefix + svcUser, idOf(Math.max(fromSeq, 0)), "+", "COUNT", READ_BATCH);
    if (r.length === 0) return null;
    const read = r.map(([id, fields]) => {
      let data: Uint8Array = new Uint8Array(0);
      let hint = "";
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const name = decoder.decode(fields[i]);
        if (name === "data") data = fields[i + 1];
        else if (name === "frame") hint = decoder.decode(fields[i + 1]);
      }
      return { seq: seqOf(decoder.decode(id)), data, hint: parseFrameHint(hint) };
    });
    if (read.length > 1) {
      let bytes = 0;
      for (const m of read) bytes += m.data.length + 64;
      if (this.aheadBytes + bytes > AHEAD_MAX_BYTES) {
        this.ahead.clear();
        this.aheadBytes = 0;
      }
      this.ahead.set(svcUser, { from: fromSeq, list: read, bytes });
      this.aheadBytes += bytes;
    }
    return read[0];
  }

  private forget(svcUser: string) {
    const kept = this.ahead.get(svcUser);
    if (!kept) return;
    this.aheadBytes -= kept.bytes;
    this.ahead.delete(svcUser);
  }

  private api(): Redis {
    if (!this.client) throw new Error("the mailbox's Redis connection is not ready");
    return this.client;
  }
}
