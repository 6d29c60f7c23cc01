import type { Config } from '../config/config.ts';
import { immutableTagsOf } from './gc.ts';
import type { Logger } from '../logging/logger.ts';
import type { DirectUploadOptions } from '../registry/direct-uploads.ts';
import type { HashStates } from '../registry/hashing.ts';
import { Registry, type RegistryStore } from '../registry/registry.ts';
import { publishWindowFor } from '../registry/upload-session.ts';
import type { StorageDriver } from '../storage/port.ts';

/**
 * The store the configuration names. S3 credentials come from the AWS SDK's default chain. Each
 * driver is loaded only for its store: `berth serve` on the filesystem never loads the S3 driver
 * (and with it the AWS SDK, about 25 MiB of a process's memory), and the Lambda functions on S3
 * never load the filesystem driver (docs/lambda.md, "Cold start").
 */
export async function createStorage(config: Config): Promise<StorageDriver> {
  if (config.storage === 'filesystem') {
    const [{ FilesystemDriver }, { LocalStorageUrls, withLocalUrls }] = await Promise.all([
      import('../storage/filesystem/index.ts'),
      import('../storage/local-urls.ts'),
    ]);
    const driver = new FilesystemDriver({ root: config.dataDir });
    // Behind `berth serve --lambda`: blob GETs redirect to the gateway's signed storage URLs, as
    // they redirect to S3 on AWS (a Lambda response cannot carry a large blob).
    return config.localStorageKey
      ? withLocalUrls(driver, LocalStorageUrls.fromHex(config.localStorageKey))
      : driver;
  }
  const { bucket, prefix, region, endpoint, forcePathStyle, publicEndpoint } = config.s3;
  if (!bucket) throw new Error('the s3 store needs a bucket');
  const { S3Driver, createS3Client } = await import('../storage/s3/index.ts');
  return new S3Driver({
    client: createS3Client({ region, endpoint, forcePathStyle }),
    bucket,
    prefix,
    publicEndpoint,
  });
}

/** What differs between the processes that run a registry (local server, `berth gc`, the Lambda functions). */
export interface RegistryRuntime {
  /** Where an upload's running digest is kept between its requests: in memory, or serialized into the session. */
  readonly hashes: HashStates;
  /** Verifies large direct uploads elsewhere (on AWS: the verifier function); without it, in the background here. */
  readonly dispatch?: DirectUploadOptions['dispatch'];
  /** For what happens outside a request (background verifications). */
  readonly logger?: Logger;
}

/**
 * The registry the configuration describes, and the store it names. The store is handed out here,
 * beside the registry, for the modules that work on its layout (gc, fsck, the web UI's read model,
 * the janitor and the local server's purge); the routes and the mirror get only the registry.
 */
export async function openStore(config: Config, runtime: RegistryRuntime): Promise<RegistryStore> {
  const storage = await createStorage(config);
  return { registry: registryOn(storage, config, runtime), storage };
}

/** The registry alone, for a process that needs nothing of the store beside it (the verifier). */
export async function createRegistry(config: Config, runtime: RegistryRuntime): Promise<Registry> {
  return (await openStore(config, runtime)).registry;
}

function registryOn(storage: StorageDriver, config: Config, runtime: RegistryRuntime): Registry {
  return new Registry({
    storage,
    hashes: runtime.hashes,
    limits: {
      maxBlobSize: config.maxBlobSize,
      partSize: config.partSize,
      leaseMs: config.uploadLeaseSeconds * 1000,
      publishWindowMs: publishWindowFor(config.uploadTtlSeconds * 1000),
    },
    mountWithoutFrom: config.mountWithoutFrom,
    immutableTags: immutableTagsOf(config),
    uploadQuota: {
      sessions: config.uploadSessionsPerClient,
      bytes: config.uploadBytesPerClient,
      idleMs: config.uploadTtlSeconds * 1000,
    },
    direct: {
      presignTtlSeconds: config.presignTtlSeconds,
      syncVerifyLimit: config.verifySyncLimit,
      ...(runtime.dispatch && { dispatch: runtime.dispatch }),
    },
    ...(runtime.logger && { logger: runtime.logger }),
  });
}
