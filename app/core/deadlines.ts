// Time-driven closes without a timer per connection: token expiry, and the cut of a socket
// whose peer never finished a close handshake. A timer wheel of one-second ticks.
import type { Conn } from "./conn.ts";
import { TimerWheel } from "../util/wheel.ts";

export class Deadlines extends TimerWheel<Conn> {
  constructor(onDue: (conn: Conn) => void) {
    super(1000, onDue, "closing a socket at its deadline");
  }

  /** The gateway second at which an epoch time (a JWT exp) has passed. */
  fromEpoch(epochSeconds: number): number {
    return this.tickAt(epochSeconds * 1000);
  }

  /** Replaces the connection's deadline. */
  set(conn: Conn, at: number) {
    this.add(conn, at);
  }

  clear(conn: Conn) {
    this.remove(conn);
  }
}
