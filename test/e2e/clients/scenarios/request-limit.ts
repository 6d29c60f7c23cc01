import { describe, expect, it } from 'vitest';
import { CLIENTS, layoutImage } from '../harness/clients.ts';
import { randomLayer, smallLayer } from '../harness/images.ts';
import { STATUS_ONLY, MB, sizeOf, type Scenarios } from './context.ts';

/** A layer just above the request limit: refused with a message naming the fix. */
export function layerJustAboveTheRequestLimit(s: Scenarios): void {
  const { ctx, limit, repo, clientsOr, pushOverLimit } = s;
  if (limit?.justAbove) {
    describe(`a layer just above ${limit.name}`, () => {
      const size = limit.justAbove!.size;
      for (const client of CLIENTS) {
        const name = limit?.chunked?.includes(client)
          ? `${client} push of a ${MB(size)} layer: refused whole, then pushed in chunks`
          : `${client} push of a ${MB(size)} layer fails with the registry's error`;
        it(name, async (t) => {
          clientsOr(t, client, 'crane');
          const c = ctx.c;
          const r = repo(`limit/${client}`);
          // The tar adds a header block, padding and two end blocks to the file.
          const img = layoutImage(c.dir('layout'), {
            layers: [smallLayer(`limit-${client}`), randomLayer('big.bin', size - 2048)],
          });
          const ref = c.ref(r, 'v1');
          const big = img.layers[1]!;
          const text = await pushOverLimit(t, client, () => c.push(client, img, ref), {
            repo: r,
            tag: 'v1',
            blob: big,
            size: sizeOf(img, big),
          });
          if (text !== undefined && !STATUS_ONLY.includes(client)) {
            expect(text, "the registry's message naming the fix").toMatch(limit!.justAbove!.message);
          }
          await c.forget(client, ref);
        });
      }
    });
  }
}
