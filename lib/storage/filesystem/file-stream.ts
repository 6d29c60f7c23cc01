import type { FileHandle } from 'node:fs/promises';

const READ_SIZE = 1024 * 1024;

/**
 * Bytes [start, end) of an open file as a web stream, read on demand (bounded memory, and
 * backpressure from the consumer). The stream owns the handle: it closes it when done or cancelled.
 * Reading through the handle, not the path, keeps serving the object that was opened even if the
 * key is overwritten or deleted meanwhile.
 */
export function fileStream(handle: FileHandle, start: number, end: number): ReadableStream<Uint8Array> {
  let position = start;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const length = Math.min(READ_SIZE, end - position);
      if (length <= 0) {
        controller.close();
        await handle.close();
        return;
      }
      try {
        const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(length), 0, length, position);
        if (bytesRead === 0) throw new Error('object file is shorter than its header says');
        position += bytesRead;
        controller.enqueue(buffer.subarray(0, bytesRead));
      } catch (error) {
        await handle.close();
        throw error;
      }
    },
    async cancel() {
      await handle.close();
    },
  });
}
