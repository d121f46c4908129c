// The subject names are the public contract services rely on; build them in one place.

export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export type Subjects = {
  /** client → services */
  send(svc: string, user: string): string;
  /** services → client */
  recv(svc: string, user: string): string;
  /** length of `<prefix>.recv.`, to recover the user key from a delivered subject */
  recvPrefixLength: number;
};

export function subjects(prefix: string): Subjects {
  const send = `${prefix}.send.`;
  const recv = `${prefix}.recv.`;
  return {
    send: (svc, user) => send + svc + "." + user,
    recv: (svc, user) => recv + svc + "." + user,
    recvPrefixLength: recv.length,
  };
}
