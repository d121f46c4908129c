// Property tests: whatever a client puts in cookies, headers, URLs, token claims or
// frames, nothing throws out of the parsers or the handler, no identity outside the
// subject-safe pattern comes out, and no input changes another user's routing.
import { expect, test } from "bun:test";
import fc from "fast-check";
import { OriginPolicy } from "../../app/security/access.ts";
import { Auth, identityFromClaims } from "../../app/security/auth.ts";
import { EmbeddedBroker } from "../../app/broker/embedded.ts";
import { parseFrameHint } from "../../app/broker/broker.ts";
import { loadConfig } from "../../app/ops/config.ts";
import { createGateway } from "../../app/startup.ts";
import { parseClientFrame } from "../../app/envelope/frames.ts";
import type { Conn } from "../../app/core/conn.ts";
import type { Transport } from "../../app/core/transport.ts";
import { type Identity, type IdentityError, identityFromCookies, readCookie } from "../../app/security/identity.ts";
import { ID_PATTERN } from "../../protocol/ids.ts";
import { hsSigner, now, SECRET, sign } from "../helpers/security.ts";

const SUBJECT_SAFE = /^[A-Za-z0-9_-]{1,64}$/;

/** Strings a hostile client would try: look-alikes, separators, wildcards, encodings, controls. */
const nasty = fc.oneof(
  fc.string({ unit: "grapheme-composite", maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,70}$/),
  fc.array(fc.constantFrom("a", "Z", "0", "_", "-", ".", "*", ">", " ", "%", "2E", "2A", "3E", "00", "%2e", "%252E", "\u0130", "ｕ", "\u200b", "\u2024", "е", "\n", "\t", ";", "=", '"', ","), { maxLength: 30 }).map((xs) => xs.join("")),
);

function checkIdentity(x: Identity | IdentityError) {
  if ("error" in x) {
    expect([400, 401, 403]).toContain(x.status);
    expect(typeof x.error).toBe("string");
  } else {
    expect(x.svc).toMatch(SUBJECT_SAFE);
    expect(x.user).toMatch(SUBJECT_SAFE);
  }
}

test("development cookies: any header parses without throwing, and only subject-safe identities come out", () => {
  const pair = fc.tuple(fc.oneof(fc.constantFrom("service", "user", " user", "user ", "USER", "us%65r"), nasty), nasty).map(([k, v]) => `${k}=${v}`);
  const header = fc.oneof(nasty, fc.array(fc.oneof(pair, nasty), { maxLength: 6 }).map((xs) => xs.join(";")));
  fc.assert(
    fc.property(header, (h) => {
      checkIdentity(identityFromCookies(h));
    }),
    { numRuns: 3_000 },
  );
  // Deliberately well-formed identities do come through unchanged.
  fc.assert(
    fc.property(fc.stringMatching(SUBJECT_SAFE), fc.stringMatching(SUBJECT_SAFE), (svc, user) => {
      expect(identityFromCookies(`service=${svc}; user=${encodeURIComponent(user)}`)).toEqual({ svc, user });
    }),
  );
});

test("token claims: any JSON payload yields a subject-safe identity or a refusal", () => {
  const claimValue = fc.oneof(nasty, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(nasty, { maxLength: 2 }), fc.object({ maxDepth: 1 }));
  fc.assert(
    fc.property(fc.record({ sub: claimValue, svc: claimValue, exp: fc.oneof(fc.integer(), fc.double(), nasty) }, { requiredKeys: [] }), (payload) => {
      checkIdentity(identityFromClaims(payload as never));
    }),
    { numRuns: 3_000 },
  );
});

test("signed tokens with hostile claims: verified, then refused unless sub and svc are subject-safe", async () => {
  const auth = Auth.fromConfig(loadConfig({ WSGATE_JWT_SECRET: SECRET }));
  await fc.assert(
    fc.asyncProperty(nasty, nasty, async (sub, svc) => {
      const r = await auth.verify(await sign(hsSigner(), { sub, svc, exp: now() + 600 }));
      checkIdentity(r);
      if (!("error" in r)) expect(r).toMatchObject({ svc, user: sub });
      else expect(ID_PATTERN.test(sub) && ID_PATTERN.test(svc)).toBe(false);
    }),
    { numRuns: 300 },
  );
});

test("any request (headers, cookies, query) resolves to an identity or a refusal, never an exception", async () => {
  const auth = Auth.fromConfig(loadConfig({ WSGATE_JWT_SECRET: SECRET }));
  const dev = Auth.fromConfig(loadConfig({}));
  const latin1 = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 120 });
  await fc.assert(
    fc.asyncProperty(latin1, latin1, fc.string({ maxLength: 120 }), async (cookie, authz, query) => {
      let req: Request;
      try {
        req = new Request(`http://gw/ws?${encodeURI(query)}`, { headers: { cookie, authorization: authz } });
      } catch {
        return; // not a request any runtime would hand over
      }
      checkIdentity(await auth.identify(req));
      checkIdentity(await dev.identify(req));
    }),
    { numRuns: 1_000 },
  );
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 300 }), async (token) => {
      checkIdentity(await auth.verify(token));
    }),
    { numRuns: 1_000 },
  );
});

test("cookie reader, Origin check, frame hint and envelope parser never throw", () => {
  const origins = new OriginPolicy(["https://app.example.com", "https://*.example.org"]);
  fc.assert(
    fc.property(nasty, nasty, (a, b) => {
      readCookie(a, "token");
      readCookie(`${a}=${b}; token=${b}`, "token");
      expect(typeof origins.allows(a)).toBe("boolean");
      expect([undefined, "text", "binary"]).toContain(parseFrameHint(a));
    }),
    { numRuns: 3_000 },
  );
  const jsonish = fc.oneof(
    nasty,
    fc.json(),
    fc.record({ type: fc.constantFrom("message", "request", "reply", "error", "resume", "x"), id: nasty, method: nasty, data: nasty, after: fc.anything() }, { requiredKeys: ["type"] }).map((o) => JSON.stringify(o)),
  );
  fc.assert(
    fc.property(jsonish, (text) => {
      const r = parseClientFrame(text);
      if ("bad" in r) expect(typeof r.bad).toBe("string");
      else if (r.type === "request") expect(r.method).toMatch(SUBJECT_SAFE);
    }),
    { numRuns: 3_000 },
  );
});

test("frames from any client go to that client's own subject only; deliveries reach only the addressed user", async () => {
  type Sock = { user: string; got: (string | Uint8Array)[] };
  const transport: Transport<Sock> = {
    runtime: "bun",
    textAsString: true,
    send: (ws, data) => (ws.got.push(data), 1),
    close: () => {},
  };
  const frame = fc.oneof(
    nasty,
    fc.uint8Array({ maxLength: 200 }),
    fc.string({ maxLength: 200 }).map((s) => `{"type":"message","data":${JSON.stringify(s)}}`),
    fc.constantFrom("x".repeat(70_000), "ws.send.s.other", "*", ">", '{"type":"request","id":"1","method":"m.*"}'),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), frame, fc.boolean()), { maxLength: 40 }),
      fc.array(fc.tuple(fc.oneof(fc.constantFrom("ws.recv.s.u0", "ws.recv.s.u1", "ws.recv.s.*", "ws.recv.s.>", "ws.recv.s", "ws.recv.s.u0.x"), nasty), fc.uint8Array({ maxLength: 50 })), { maxLength: 20 }),
      async (frames, deliveries) => {
        const { gw } = createGateway(loadConfig({ WSGATE_LOG_LEVEL: "error", WSGATE_MAX_MSGS_PER_SEC: "0" }), transport);
        const broker = gw.broker as EmbeddedBroker;
        await broker.start();
        const published: { subject: string; conn: string }[] = [];
        // everything published, but the lifecycle events (ws.events.*) the sockets' opening causes
        broker.tap("", (subject, _d, h) => void (subject.startsWith("ws.events.") || published.push({ subject, conn: h["Ws-Conn"] })));
        const users = ["u0", "u1", "u2", "u3"];
        const conns = users.map((user) => {
          const conn = gw.admit({ svc: "s", user }) as Conn;
          const ws: Sock = { user, got: [] };
          gw.open(conn, ws);
          return conn;
        });
        for (const [who, data, binary] of frames) gw.message(conns[who], data, binary);
        for (const p of published) {
          const sender = conns.find((c) => `${gw.config.nodeId}.${c.id}` === p.conn)!;
          expect(p.subject).toBe(`ws.send.s.${(sender.ws as Sock).user}`);
        }
        for (const [subject, data] of deliveries) broker.publish(subject, data);
        for (const c of conns) {
          const ws = c.ws as Sock;
          const addressed = deliveries.filter(([subject]) => subject === `ws.recv.s.${ws.user}`).length;
          // A socket closed for an oversized frame gets nothing more; every other gets exactly its own.
          expect(ws.got.length).toBe(c.refuse ? 0 : addressed);
        }
        gw.deadlines.stop();
      },
    ),
    { numRuns: 300 },
  );
});
