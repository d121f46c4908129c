// `wsgate publish SVC USER MESSAGE`: what a service does, from a shell. Loaded only for
// this command, so `serve` never pays for a second NATS client.
import { connect, headers } from "@nats-io/transport-node";
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
  if (config.natsUrl && !m.url) {
    const subject = `${config.prefix}.recv.${m.svc}.${m.user}`;
    try {
      const nc = await connect({ servers: config.natsUrl.split(","), name: "wsgate-cli", timeout: 5_000 });
      const h = headers();
      if (m.binary) h.set("Ws-Frame", "binary");
      nc.publish(subject, m.message, { headers: h });
      await nc.flush();
      await nc.close();
    } catch (e) {
      err(`wsgate publish: NATS ${redact(config.natsUrl)}: ${(e as Error).message}`);
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

/** A URL with credentials in it must not reach a terminal log. */
function redact(urls: string): string {
  return urls.replace(/\/\/[^@/]*@/g, "//***@");
}
