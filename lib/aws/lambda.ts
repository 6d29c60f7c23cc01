/**
 * The Lambda operation Berth uses (asynchronous invokes), as one module that callers load with
 * `import()` when they first need it; named, so that esbuild keeps only this command.
 */
export { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
