// Private dockerd and containerd instances: their own data/exec/state dirs and unix sockets under the
// work dir, no networking (registry tests push and pull; they never run containers), vfs/native
// storage (no overlay inside this container). Stopped by pid afterwards.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GiveUp, run, startDaemon, waitFor, type Daemon } from './proc.ts';

export interface Dockerd {
  daemon: Daemon;
  /** unix:///.../docker.sock, for DOCKER_HOST. */
  host: string;
}

/** `extraArgs`: more dockerd flags, e.g. `--registry-mirror <url>` or `--config-file <daemon.json>`. */
export async function startDockerd(
  dir: string,
  env: NodeJS.ProcessEnv,
  extraArgs: readonly string[] = [],
): Promise<Dockerd> {
  mkdirSync(dir, { recursive: true });
  const sock = path.join(dir, 'docker.sock');
  const host = `unix://${sock}`;
  const bin = env.BERTH_E2E_DOCKERD ?? 'dockerd';
  const args = [
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    '--storage-driver=vfs',
    `--data-root=${path.join(dir, 'data')}`,
    `--exec-root=${path.join(dir, 'exec')}`,
    `--pidfile=${path.join(dir, 'docker.pid')}`,
    `-H`,
    host,
    ...extraArgs,
  ];
  // No --containerd: dockerd starts and stops its own containerd under exec-root.
  const daemon = startDaemon('dockerd', bin, args, {
    logFile: path.join(dir, 'dockerd.log'),
    env: { ...env, DOCKER_HOST: undefined },
    group: false,
  });
  let exited: number | null | undefined;
  void daemon.exited.then((c) => (exited = c));
  const docker = env.BERTH_E2E_DOCKER ?? 'docker';
  try {
    await waitFor(
      'dockerd to answer',
      async () => {
        if (exited !== undefined) throw new GiveUp(`dockerd exited with ${exited}:\n${daemon.logTail()}`);
        const r = await run(docker, ['version', '--format', '{{.Server.Version}}'], {
          env: { ...env, DOCKER_HOST: host },
          allowFailure: true,
          timeoutMs: 10_000,
        });
        return r.code === 0;
      },
      60_000,
    );
  } catch (e) {
    await daemon.stop(5_000);
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${daemon.logTail()}`, { cause: e });
  }
  return { daemon, host };
}

export interface Containerd {
  daemon: Daemon;
  /** The socket path, for CONTAINERD_ADDRESS / ctr --address. */
  address: string;
}

export async function startContainerd(dir: string, env: NodeJS.ProcessEnv): Promise<Containerd> {
  mkdirSync(dir, { recursive: true });
  const address = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  writeFileSync(
    config,
    [
      'version = 2',
      `root = "${path.join(dir, 'root')}"`,
      `state = "${path.join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",',
      '  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",',
      '  "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]',
      `  address = "${address}"`,
      '',
    ].join('\n'),
  );
  const daemon = startDaemon('containerd', env.BERTH_E2E_CONTAINERD ?? 'containerd', ['--config', config], {
    logFile: path.join(dir, 'containerd.log'),
    env,
  });
  let exited: number | null | undefined;
  void daemon.exited.then((c) => (exited = c));
  try {
    await waitFor(
      'containerd to answer',
      async () => {
        if (exited !== undefined) throw new GiveUp(`containerd exited with ${exited}:\n${daemon.logTail()}`);
        const r = await run('ctr', ['--address', address, 'version'], {
          env,
          allowFailure: true,
          timeoutMs: 10_000,
        });
        return r.code === 0;
      },
      30_000,
    );
  } catch (e) {
    await daemon.stop(5_000);
    throw e;
  }
  return { daemon, address };
}
