// One page of a node's users for presence: the `limit` smallest names after `after`,
// sorted, in one pass and without sorting the whole set (a node may hold 100,000 users).

export function firstAfter(names: Iterable<string>, after: string, limit: number): string[] {
  const page: string[] = [];
  for (const n of names) {
    if (n <= after) continue;
    if (page.length === limit) {
      if (n >= page[limit - 1]) continue;
      page.pop();
    }
    // binary insertion: the page stays sorted
    let lo = 0;
    let hi = page.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (page[mid] < n) lo = mid + 1;
      else hi = mid;
    }
    page.splice(lo, 0, n);
  }
  return page;
}
