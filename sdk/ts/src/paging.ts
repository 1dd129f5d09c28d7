/** One page of a list call. */
export interface Page<T> {
  /** The items of this page, oldest first. */
  items: T[];
  /** The token of the next page; empty on the last page. */
  nextPageToken: string;
}

/**
 * The result of `listWallets` and `listSignatures`: iterate it with
 * `for await` to get every item, fetching pages lazily, or walk the pages
 * themselves with {@link PageIterable.pages}. Each iteration starts over.
 */
export interface PageIterable<T> extends AsyncIterable<T> {
  /** Iterates page by page, e.g. to save `nextPageToken` and resume later. */
  pages(): AsyncIterable<Page<T>>;
  /** Reads every item (or the first `limit`) into an array. */
  toArray(limit?: number): Promise<T[]>;
}

/** Turns a page fetcher into a {@link PageIterable} that starts at `firstToken`. */
export function pager<T>(fetchPage: (pageToken: string) => Promise<Page<T>>, firstToken: string): PageIterable<T> {
  async function* pages(): AsyncGenerator<Page<T>> {
    let token = firstToken;
    const seen = new Set<string>();
    for (;;) {
      const page = await fetchPage(token);
      yield page;
      if (!page.nextPageToken) return;
      // A server bug repeating a token would loop forever; stop instead.
      if (seen.has(page.nextPageToken)) {
        throw new Error(`sigil: the server repeated page token ${page.nextPageToken}`);
      }
      seen.add(page.nextPageToken);
      token = page.nextPageToken;
    }
  }
  async function* items(): AsyncGenerator<T> {
    for await (const page of pages()) yield* page.items;
  }
  return {
    [Symbol.asyncIterator]: () => items(),
    pages,
    async toArray(limit?: number): Promise<T[]> {
      const out: T[] = [];
      if (limit !== undefined && limit <= 0) return out;
      for await (const item of items()) {
        out.push(item);
        if (limit !== undefined && out.length >= limit) break;
      }
      return out;
    },
  };
}
