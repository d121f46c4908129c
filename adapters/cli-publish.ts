// `wsgate publish SVC USER MESSAGE`: what a service does, from a shell. Loaded only for
// this command, so `serve` never pays for a second NATS client.
import { readFileSync } from "node:fs";
import { connect, headers } from "@nats-io/transport-node";
import { connectOptions } from "../app/broker/nats-connect.ts";
import { loadNatsLink } from "../app/broker/nats-link.ts";
import { checkConfig } from "../app/ops/config.ts";
import { idError, isId } from "../protocol/ids.ts";

type Msg = { svc: string; user: string; message: string; url: string | undefined; binary: boolean };

export async function publish(env: Record<string, string | undefined>, m: Msg, out: (l: string) => void, err: (l: string) => void): Promise<number> {
  const problems: string[] = [];
  if (!isId(m.svc)) problems.push(idError("SVC"));
  if (!isId(m.user)) problems.push(idError("USER"));
  const { config, errors } = checkConfig(env);
  if (!config) problems.push(...errors);
  if (problems.length || !config) {
    for (const p of problems) err(`wsgate publish: ${p}`);
    return 2;
  }
  if (config.nats && !m.url) {
    const subject = `${config.prefix}.recv.${m.svc}.${m.user}`;
    try {
      // The gateway's own credentials and TLS settings: what it may publish, this command may.
      const link = loadNatsLink(config.nats, (path) => readFileSync(path, "utf8"));
      const nc = await connect({ ...connectOptions(link, "wsgate-cli"), maxReconnectAttempts: 0, timeout: 5_000 });
      const h = headers();
      if (m.binary) h.set("Ws-Frame", "binary");
      nc.publish(subject, m.message, { headers: h });
      await nc.flush();
      await nc.close();
    } catch (e) {
      err(`wsgate publish: NATS ${config.nats.redacted}: ${(e as Error).message}`);
      return 1;
    }
    out(`published to ${subject}`);
    return 0;
  }
  const base = (m.url ?? `http://127.0.0.1:${config.port}`).replace(/\/+$/, "");
  const h: Record<string, string> = { "Ws-Frame": m.binary ? "binary" : "text" };
  if (config.publishToken) h.Authorization = `Bearer ${config.publishToken}`;
  let res: Response;
  try {
    res = await fetch(`${base}/v1/publish/${m.svc}/${m.user}`, { method: "POST", headers: h, body: m.message });
  } catch (e) {
    err(`wsgate publish: no gateway answered at ${base} (${(e as Error).message}); start one or pass --url`);
    return 1;
  }
  if (res.status !== 202) {
    err(`wsgate publish: ${base} answered ${res.status}: ${(await res.text()).trim()}`);
    return 1;
  }
  out(`published to ${m.svc}/${m.user} through ${base}`);
  return 0;
}
