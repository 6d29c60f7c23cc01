export { createS3Client, type S3ClientOptions } from './client.ts';
export { S3Driver, type S3DriverOptions } from './driver.ts';
export { MAX_BUFFERED_PUT } from './body.ts';
