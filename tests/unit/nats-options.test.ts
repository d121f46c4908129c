import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../app/ops/config.ts";
import { redactNatsUrl } from "../../app/broker/nats-options.ts";
import { loadNatsLink } from "../../app/broker/nats-link.ts";
import { KeyError } from "../../app/security/auth.ts";

const nats = (env: Record<string, string>) => loadConfig(env).nats!;

describe("NATS_URL credentials", () => {
  test("user and password come out of the URL, percent-decoded; the servers keep none and the logged URL shows ***", () => {
    const c = loadConfig({ NATS_URL: "nats://alice:p%40ss%3Aw0rd@10.0.0.1:4222,nats://alice:p%40ss%3Aw0rd@10.0.0.2:4222" });
    expect(c.nats!.auth).toEqual({ kind: "user", user: "alice", pass: "p@ss:w0rd", from: "NATS_URL" });
    expect(c.nats!.servers).toEqual(["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]);
    expect(c.natsUrl).toBe("nats://alice:***@10.0.0.1:4222,nats://alice:***@10.0.0.2:4222");
  });

  test("a user part without a colon is a token", () => {
    const s = nats({ NATS_URL: "nats://s3cr3t-token@host:4222" });
    expect(s.auth).toEqual({ kind: "token", token: "s3cr3t-token", from: "NATS_URL" });
    expect(s.redacted).toBe("nats://***@host:4222");
  });

  test("URLs without a scheme and tls:// ones: credentials taken out, tls:// asks for TLS", () => {
    const s = nats({ NATS_URL: "bob:pw@127.0.0.1:4222,tls://bob:pw@127.0.0.2:4222" });
    expect(s.servers).toEqual(["127.0.0.1:4222", "tls://127.0.0.2:4222"]);
    expect(s.tls).toEqual({ ca: undefined, cert: undefined, key: undefined });
    expect(nats({ NATS_URL: "nats://127.0.0.1:4222" }).tls).toBeNull();
  });

  test("redaction leaves URLs without credentials alone", () => {
    expect(redactNatsUrl("nats://127.0.0.1:4222,127.0.0.2")).toBe("nats://127.0.0.1:4222,127.0.0.2");
    expect(redactNatsUrl("nats://a:b@c@host")).toBe("nats://a:***@host");
  });
});

describe("NATS settings", () => {
  test("each way of giving credentials on its own", () => {
    expect(nats({ NATS_URL: "nats://h", NATS_USER: "u", NATS_PASSWORD: "p" }).auth).toEqual({ kind: "user", user: "u", pass: "p", from: "NATS_USER" });
    expect(nats({ NATS_URL: "nats://h", NATS_TOKEN: "t" }).auth).toEqual({ kind: "token", token: "t", from: "NATS_TOKEN" });
    expect(nats({ NATS_URL: "nats://h", NATS_NKEY_SEED_FILE: "/k.nk" }).auth).toEqual({ kind: "nkey", seedFile: "/k.nk" });
    expect(nats({ NATS_URL: "nats://h", NATS_CREDS_FILE: "/u.creds" }).auth).toEqual({ kind: "creds", credsFile: "/u.creds" });
    expect(nats({ NATS_URL: "nats://h", NATS_TLS_CA: "/ca.pem", NATS_TLS_CERT: "/c.pem", NATS_TLS_KEY: "/c.key" }).tls).toEqual({ ca: "/ca.pem", cert: "/c.pem", key: "/c.key" });
    expect(loadConfig({ NATS_TOKEN: "t" }).nats).toBeNull();
  });

  test("conflicting or incomplete settings are one clear config error, with no secret in it", () => {
    const bad: [Record<string, string>, string][] = [
      [{ NATS_URL: "nats://alice:pw1@h", NATS_PASSWORD: "pw2", NATS_USER: "alice" }, 'NATS_URL="nats://alice:***@h" rejected: credentials in NATS_URL and NATS_USER/NATS_PASSWORD are set'],
      [{ NATS_URL: "nats://h", NATS_USER: "u", NATS_PASSWORD: "pw3", NATS_TOKEN: "tok" }, "NATS_USER/NATS_PASSWORD and NATS_TOKEN are set: give the gateway's NATS credentials one way"],
      [{ NATS_URL: "nats://h", NATS_TOKEN: "tok", NATS_CREDS_FILE: "/u.creds" }, "NATS_TOKEN and NATS_CREDS_FILE are set"],
      [{ NATS_URL: "nats://a:pw4@h1,nats://b:pw5@h2" }, 'NATS_URL="nats://a:***@h1,nats://b:***@h2" rejected: the URLs carry different credentials'],
      [{ NATS_URL: "nats://h", NATS_PASSWORD: "pw6" }, 'NATS_USER="" rejected: NATS_PASSWORD is set: NATS_USER and NATS_PASSWORD go together'],
      [{ NATS_URL: "nats://h", NATS_USER: "u" }, 'NATS_PASSWORD="" rejected'],
      [{ NATS_URL: "nats://h", NATS_TLS_CERT: "/c.pem" }, 'NATS_TLS_KEY="" rejected: NATS_TLS_CERT is set'],
      [{ NATS_URL: "nats://a:%zz@h" }, 'NATS_URL="nats://a:***@h" rejected: the credentials in NATS_URL are not valid percent-encoding'],
      [{ NATS_URL: "nats://alice:pw7@a b" }, 'NATS_URL="nats://alice:***@a b" rejected: NATS_URL must be'],
    ];
    for (const [env, msg] of bad) {
      let err: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(msg);
      expect((err as Error).message).not.toMatch(/pw\d|tok\b/);
    }
  });
});

describe("NATS key and certificate files", () => {
  const seed = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4";
  const creds = "-----BEGIN NATS USER JWT-----\neyJ0eXAi.x.y\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n" + seed + "\n------END USER NKEY SEED------\n";
  const files: Record<string, string> = { "/k.nk": seed + "\n", "/u.creds": creds, "/ca.pem": "-----BEGIN CERTIFICATE-----\nx\n", "/c.key": "-----BEGIN EC PRIVATE KEY-----\nx\n", "/junk": "hello" };
  const read = (p: string) => {
    if (!(p in files)) throw new Error(`ENOENT: no such file, open '${p}'`);
    return files[p];
  };

  test("the seed, the .creds file and the TLS files are read through the adapter's reader and passed on", () => {
    expect(loadNatsLink(nats({ NATS_URL: "nats://h", NATS_NKEY_SEED_FILE: "/k.nk" }), read).auth).toEqual({ kind: "nkey", seed });
    const link = loadNatsLink(nats({ NATS_URL: "nats://h", NATS_CREDS_FILE: "/u.creds", NATS_TLS_CA: "/ca.pem", NATS_TLS_CERT: "/ca.pem", NATS_TLS_KEY: "/c.key" }), read);
    expect(link.auth).toEqual({ kind: "creds", creds });
    expect(link.tls).toEqual({ ca: files["/ca.pem"], cert: files["/ca.pem"], key: files["/c.key"] });
    expect(JSON.stringify(link.describe)).not.toContain(seed);
  });

  test("a missing or wrong file is a KeyError naming the variable and the path", () => {
    const bad: [Record<string, string>, string][] = [
      [{ NATS_NKEY_SEED_FILE: "/nope" }, 'NATS_NKEY_SEED_FILE="/nope" rejected: cannot read the file (ENOENT'],
      [{ NATS_NKEY_SEED_FILE: "/junk" }, 'NATS_NKEY_SEED_FILE="/junk" rejected: not an NKey user seed'],
      [{ NATS_CREDS_FILE: "/junk" }, 'NATS_CREDS_FILE="/junk" rejected: not a NATS .creds file'],
      [{ NATS_TLS_CA: "/junk" }, 'NATS_TLS_CA="/junk" rejected: not a PEM certificate'],
      [{ NATS_TLS_CERT: "/ca.pem", NATS_TLS_KEY: "/junk" }, 'NATS_TLS_KEY="/junk" rejected: not a PEM private key'],
    ];
    for (const [env, msg] of bad) {
      const s = nats({ NATS_URL: "nats://h", ...env });
      expect(() => loadNatsLink(s, read)).toThrow(KeyError);
      expect(() => loadNatsLink(s, read)).toThrow(msg);
    }
    expect(() => loadNatsLink(nats({ NATS_URL: "nats://h", NATS_CREDS_FILE: "/u.creds" }))).toThrow("NATS_CREDS_FILE is set but this adapter does not load key files");
  });
});
