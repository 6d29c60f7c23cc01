export { FilesystemDriver, type FilesystemOptions } from './driver.ts';
