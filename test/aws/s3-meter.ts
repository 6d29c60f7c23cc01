import type { S3Client } from '@aws-sdk/client-s3';

/** One S3 call as the registry made it (not one HTTP attempt: the SDK's retries are inside it). */
export interface S3Call {
  /** The command without its `Command` suffix: `PutObject`, `UploadPart`, ... */
  readonly command: string;
  /** The object key relative to the registry's prefix, when the command names one. */
  readonly key?: string;
  /** The command's input, as the driver built it, without the body. */
  readonly input: Readonly<Record<string, unknown>>;
  /** Body bytes sent: the ContentLength of a PutObject or UploadPart. */
  readonly sent: number;
  /** Body bytes received: the ContentLength of a GetObject answer. */
  received: number;
  /** The HTTP status S3 answered with (of the error, when the call failed). */
  status?: number;
  /** The error's name, when the call failed. */
  error?: string;
}

const BODY_COMMANDS = new Set(['PutObject', 'UploadPart']);

/**
 * Counts S3 calls with a middleware on the client's stack, at the initialize step: once per call
 * however often the SDK retries it. Presigning runs the same stack on a clone but sends nothing;
 * those runs are recognised by their `presigned` output and counted apart.
 */
export class S3Meter {
  private readonly log: S3Call[] = [];
  /** URLs presigned (no request to S3). */
  presigned = 0;
  /** Awaited before each call goes out: lets a test hold calls back to line up a race. */
  gate: ((call: S3Call) => Promise<void>) | undefined;

  constructor(
    client: S3Client,
    /** The driver's key prefix, stripped from recorded keys. */
    private readonly prefix = '',
  ) {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = (args.input ?? {}) as Record<string, unknown>;
        const command = String(context.commandName ?? 'Unknown').replace(/Command$/, '');
        const key = typeof input.Key === 'string' ? this.relative(input.Key) : undefined;
        const call: S3Call = {
          command,
          ...(key !== undefined && { key }),
          // Not the body: a failing assertion would print megabytes, and parts would stay in memory.
          input: Object.fromEntries(Object.entries(input).filter(([name]) => name !== 'Body')),
          sent: BODY_COMMANDS.has(command) ? Number(input.ContentLength ?? 0) : 0,
          received: 0,
        };
        let presign = false;
        try {
          if (this.gate) await this.gate(call);
          const result = await next(args);
          const output = result.output as Record<string, unknown> & {
            $metadata?: { httpStatusCode?: number };
          };
          presign = 'presigned' in output;
          call.status = output.$metadata?.httpStatusCode;
          if (command === 'GetObject') call.received = Number(output.ContentLength ?? 0);
          return result;
        } catch (err) {
          const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
          call.error = e.name ?? 'Error';
          call.status = e.$metadata?.httpStatusCode;
          throw err;
        } finally {
          if (presign) this.presigned++;
          else this.log.push(call);
        }
      },
      { step: 'initialize', name: 'berthS3Meter', override: true },
    );
  }

  /** Every call so far, in the order they ended. */
  get calls(): readonly S3Call[] {
    return this.log;
  }

  /** A point to count from: `meter.since(mark)`. */
  mark(): number {
    return this.log.length;
  }

  since(mark: number): readonly S3Call[] {
    return this.log.slice(mark);
  }

  /** Runs `action` and returns what it did to S3. */
  async measure<T>(
    action: () => Promise<T>,
  ): Promise<{ result: T; calls: readonly S3Call[]; presigned: number }> {
    const mark = this.mark();
    const presignedBefore = this.presigned;
    const result = await action();
    return { result, calls: this.since(mark), presigned: this.presigned - presignedBefore };
  }

  private relative(bucketKey: string): string {
    return this.prefix !== '' && bucketKey.startsWith(`${this.prefix}/`)
      ? bucketKey.slice(this.prefix.length + 1)
      : bucketKey;
  }
}

/** `{ PutObject: 3, GetObject: 1 }`: calls by command. */
export function byCommand(calls: readonly S3Call[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { command } of calls) counts[command] = (counts[command] ?? 0) + 1;
  return counts;
}

export const bytesSent = (calls: readonly S3Call[]) => calls.reduce((sum, c) => sum + c.sent, 0);
export const bytesReceived = (calls: readonly S3Call[]) => calls.reduce((sum, c) => sum + c.received, 0);
