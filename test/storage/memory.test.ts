import { MemoryDriver } from '../../lib/storage/memory.ts';
import { runStorageContract } from './contract.ts';
import { runOrderedPartsSuite } from './ordered-parts.ts';

async function makeDriver() {
  return { driver: new MemoryDriver(), cleanup: async () => {} };
}

runStorageContract('memory', makeDriver);
runStorageContract('memory, with parts written as they arrive', async () => ({
  driver: new MemoryDriver({ streaming: true }),
  cleanup: async () => {},
}));
runOrderedPartsSuite('memory', makeDriver);
