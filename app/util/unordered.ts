// Lists whose order means nothing (a user's sockets, a connection's open requests): removing
// one moves the last element into its place instead of shifting everything after it.

/** Removes `item` from `list` if it is there; the order of what is left changes. */
export function removeUnordered<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i < 0) return;
  list[i] = list[list.length - 1];
  list.pop();
}
