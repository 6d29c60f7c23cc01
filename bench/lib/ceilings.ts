/**
 * The machine's ceilings, measured by the same run, so each figure can be read against what the
 * hardware allows: sha256 (openssl's C/assembly, and Node's crypto fed in 64 KiB chunks as a stream
 * is), sequential disk write with fsync in the harness's work dir, and TCP over loopback between two
 * Node processes.
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { MiB, run } from './proc.ts';

export interface Ceilings {
  sha256OpensslMBs: number;
  sha256NodeMBs: number;
  diskWriteFsyncMBs: number;
  loopbackTcpMBs: number;
}

const MB = 1e6;

async function opensslSha256(): Promise<number> {
  const r = await run('openssl', ['speed', '-evp', 'sha256', '-seconds', '2', '-bytes', '16384'], {
    timeoutMs: 60_000,
  });
  // The result line: "sha256    123456.78k" (thousands of bytes per second).
  const line = r.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => /^sha256\s/i.test(l.trim()));
  const k = Number(/([\d.]+)k\s*$/.exec(line ?? '')?.[1] ?? NaN);
  return (k * 1000) / MB;
}

function nodeSha256(bytes: number): number {
  const chunk = randomFillSync(Buffer.alloc(64 * 1024));
  const hash = createHash('sha256');
  const t0 = performance.now();
  for (let done = 0; done < bytes; done += chunk.length) hash.update(chunk);
  hash.digest();
  return bytes / MB / ((performance.now() - t0) / 1000);
}

function diskWrite(dir: string, bytes: number): number {
  const file = join(dir, 'ceiling-disk-write.bin');
  const chunk = randomFillSync(Buffer.alloc(MiB));
  const t0 = performance.now();
  const fd = openSync(file, 'w');
  try {
    for (let done = 0; done < bytes; done += chunk.length) writeSync(fd, chunk);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const seconds = (performance.now() - t0) / 1000;
  rmSync(file, { force: true });
  return bytes / MB / seconds;
}

/** A sink in a second Node process counts what a client here writes; timed until it has all. */
async function loopbackTcp(bytes: number): Promise<number> {
  const sink = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('net').createServer((c) => { let n = 0; c.on('data', (d) => { n += d.length; if (n >= ${bytes}) { c.end('done'); } }); });
       s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<number>((done) =>
      sink.stdout.once('data', (d: Buffer) => done(Number(d))),
    );
    const chunk = randomFillSync(Buffer.alloc(256 * 1024));
    const t0 = performance.now();
    await new Promise<void>((done, fail) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('error', fail);
      socket.once('data', () => {
        socket.destroy();
        done();
      });
      let sent = 0;
      const pump = () => {
        while (sent < bytes) {
          sent += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      socket.once('connect', pump);
    });
    return bytes / MB / ((performance.now() - t0) / 1000);
  } finally {
    sink.kill('SIGTERM');
  }
}

export async function measureCeilings(workDir: string, quick: boolean): Promise<Ceilings> {
  const size = (quick ? 256 : 1024) * MiB;
  return {
    sha256OpensslMBs: await opensslSha256(),
    sha256NodeMBs: nodeSha256(size),
    diskWriteFsyncMBs: diskWrite(workDir, size),
    loopbackTcpMBs: await loopbackTcp(size * 2),
  };
}
