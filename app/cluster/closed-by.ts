// Who ended a connection, for disconnect events, from the close code the gateway itself
// chose (null when the peer closed first or the connection dropped).
import type { ClosedBy } from "./local.ts";

export function closedBy(gatewayCode: number | null): ClosedBy {
  if (gatewayCode === null) return "client";
  switch (gatewayCode) {
    case 1001:
      return "drain";
    case 4004:
    case 4101:
      return "service";
    // frame too big, node full, slow consumer, message rate, connections per user
    case 1009:
    case 1013:
    case 4002:
    case 4003:
    case 4100:
      return "limit";
    default:
      // token expired, internal error
      return "server";
  }
}
