import { RegistryError } from '../../oci/errors.ts';
import type { HttpOptions } from '../context.ts';

/**
 * `GET /v2/_berth/v1/usage`: the latest usage report (docs/gc.md), as `berth gc`, `berth usage --save`
 * or the janitor stored it. Computing it lists the whole store, too slow for a request on a large
 * registry, so it is read, not computed; `generatedAt` says how fresh it is.
 */
export async function handleUsage(options: HttpOptions): Promise<Response> {
  const report = await options.registry.usage.load();
  if (!report) {
    throw new RegistryError(
      'UNSUPPORTED',
      'no usage report yet: it is written by each garbage collection (the janitor on AWS, `berth gc` locally) and by `berth usage --save`',
      { status: 404 },
    );
  }
  return new Response(report as Uint8Array<ArrayBuffer>, {
    status: 200,
    headers: {
      'Content-Type': 'application/json',
      'Content-Length': String(report.byteLength),
      'Cache-Control': 'no-store',
    },
  });
}
