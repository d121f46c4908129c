// The one way a client's frame reaches the broker, raw or wsgate.v1 `message` alike: the same
// subject and headers, so services cannot tell the two modes apart.
import type { Broker } from "../broker/broker.ts";
import { HEADER } from "../broker/broker.ts";
import { CLOSE } from "../../protocol/close-codes.ts";
import type { Metrics } from "../ops/metrics.ts";
import { log } from "../ops/log.ts";
import type { Conn, UserEntry } from "./conn.ts";
import type { Transport } from "./transport.ts";

export class ClientPublisher {
  constructor(
    private readonly broker: Broker,
    private readonly transport: Transport,
    private readonly metrics: Metrics,
    private readonly nodeId: string,
    /** `<prefix>.send.` */
    private readonly sendPrefix: string,
    private readonly svcUser: (entry: UserEntry) => string,
  ) {}

  /** Publishes on `<prefix>.send.<svc>.<user>`; a broker that refuses closes the socket so the client retries. */
  publish(conn: Conn, bytes: Uint8Array, binary: boolean): void {
    try {
      this.broker.publish((conn.send ??= this.sendPrefix + this.svcUser(conn.user!)), bytes, {
        [HEADER.conn]: `${this.nodeId}.${conn.id}`,
        [HEADER.node]: this.nodeId,
        [HEADER.frame]: binary ? "binary" : "text",
      });
    } catch (err) {
      this.metrics.publishErrors++;
      log("warn", "publish failed; closing the connection so the client retries", { error: String(err) });
      this.transport.close(conn.ws, CLOSE.INTERNAL.code, "broker unavailable");
    }
  }
}
