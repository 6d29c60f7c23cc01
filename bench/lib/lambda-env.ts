/**
 * The environment a Lambda bundle is started with when measured here: S3 store with dummy
 * credentials (no storage call is made), logs off, and no auth file, so the init measured excludes
 * the signing key's import, as the figures in BENCHMARKS.md always did.
 */
export function benchLambdaEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    BERTH_STORAGE: 's3',
    BERTH_S3_BUCKET: 'bench-bucket',
    BERTH_LOG_LEVEL: 'silent',
    BERTH_INSECURE_NO_AUTH: 'true',
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
  };
}
