// Upgrades decided after an await (a signed token is verified asynchronously) must give a
// socket the gateway serves, one after another, on every runtime. On Node's older uWS build a
// corked late upgrade sometimes left the client with an open socket the gateway had dropped.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { type Gateway, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";

const SECRET = "token-upgrades-secret-".padEnd(40, "x");
const PUBLISH = "p".repeat(32);
const key = new TextEncoder().encode(SECRET);

for (const runtime of RUNTIMES) {
  describe(`${runtime}: token-checked upgrades`, () => {
    let gw: Gateway;
    beforeAll(async () => {
      gw = await startGateway(runtime, { env: { WSGATE_JWT_SECRET: SECRET, WSGATE_PUBLISH_TOKEN: PUBLISH } });
    });
    afterAll(async () => {
      await gw?.stop("SIGKILL");
    });

    test("80 token-checked upgrades in a row: every socket the client sees open receives its user's messages", async () => {
      for (let i = 0; i < 80; i++) {
        const user = `tu${i}`;
        const token = await new SignJWT({ svc: "tk" }).setProtectedHeader({ alg: "HS256" }).setSubject(user).setExpirationTime("2m").sign(key);
        const ws = new WebSocket(gw.ws, { headers: { Authorization: `Bearer ${token}` } } as unknown as string[]);
        const got: string[] = [];
        ws.onmessage = (e) => got.push(String(e.data));
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onclose = (e) => reject(new Error(`${user}: closed ${e.code} before opening`));
        });
        await waitFor(`${user} served`, async () => {
          await gw.fetch(`/v1/publish/tk/${user}`, { method: "POST", body: "ping", headers: { Authorization: `Bearer ${PUBLISH}` } });
          await Bun.sleep(20);
          return got.length > 0;
        });
        expect(got[0]).toBe("ping");
        ws.close();
      }
    });
  });
}
