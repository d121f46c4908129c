// Everything production mode adds in front of the gateway, built once from the config:
// identity (auth.ts), Origin allowlist and service-API token (access.ts), and the
// node-wide upgrade rate (limits.ts). Routes consult it; the hot paths never do.
import { OriginPolicy, ServiceToken } from "./access.ts";
import { Auth, KeyError, type ReadTextFile } from "./auth.ts";
import type { Config } from "../ops/config.ts";
import { RateGate } from "../core/limits.ts";
import { loadNatsLink, type NatsLink } from "../broker/nats-link.ts";

export type Tls = { cert: string; key: string };

/** Key and certificate material, read at start through the adapter's file reader. */
export type Secrets = { auth: Auth; tls: Tls | null; nats: NatsLink | null };

export class Security {
  readonly origins: OriginPolicy;
  readonly serviceToken: ServiceToken;
  readonly upgrades: RateGate;

  constructor(
    readonly config: Config,
    readonly auth: Auth,
  ) {
    this.origins = new OriginPolicy(config.allowedOrigins);
    this.serviceToken = new ServiceToken(config.publishToken);
    this.upgrades = new RateGate(config.maxUpgradesPerSec);
  }

  /** The service API needs the bearer token in production mode, and whenever one is configured. */
  get serviceApiGuarded(): boolean {
    return this.auth.production || this.serviceToken.configured;
  }

  describe(): Record<string, unknown> {
    const c = this.config;
    return {
      ...this.auth.describe(),
      allowedOrigins: c.allowedOrigins ?? "any",
      serviceApi: !this.serviceApiGuarded
        ? "open (no WSGATE_PUBLISH_TOKEN)"
        : this.serviceToken.configured
          ? "Authorization: Bearer <WSGATE_PUBLISH_TOKEN>"
          : "disabled (production mode without WSGATE_PUBLISH_TOKEN)",
      limits: {
        maxMessageBytes: c.maxMessageBytes,
        maxMsgsPerSec: c.maxMsgsPerSec || "unlimited",
        msgBurst: c.msgBurst,
        maxConnsPerUser: c.maxConnsPerUser || "unlimited",
        maxConnections: c.maxConnections,
        maxUpgradesPerSec: c.maxUpgradesPerSec || "unlimited",
        maxBufferedBytes: c.maxBufferedBytes,
      },
      tls: c.tlsCert ? "on" : "off",
    };
  }
}

/** Reads the key and certificate files; any problem becomes a KeyError with the line to print. */
export async function loadSecrets(config: Config, readTextFile: ReadTextFile): Promise<Secrets> {
  const auth = await Auth.load(config, readTextFile);
  let tls: Tls | null = null;
  if (config.tlsCert && config.tlsKey) {
    const read = (name: string, path: string) => {
      try {
        return readTextFile(path);
      } catch (err) {
        throw new KeyError(`config: ${name}=${JSON.stringify(path)} rejected: cannot read the file (${err instanceof Error ? err.message : String(err)})`);
      }
    };
    tls = { cert: read("WSGATE_TLS_CERT", config.tlsCert), key: read("WSGATE_TLS_KEY", config.tlsKey) };
    if (!tls.cert.includes("-----BEGIN CERTIFICATE-----")) {
      throw new KeyError(`config: WSGATE_TLS_CERT=${JSON.stringify(config.tlsCert)} rejected: not a PEM certificate`);
    }
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(tls.key)) {
      throw new KeyError(`config: WSGATE_TLS_KEY=${JSON.stringify(config.tlsKey)} rejected: not a PEM private key`);
    }
  }
  return { auth, tls, nats: config.nats ? loadNatsLink(config.nats, readTextFile) : null };
}
