// The images the web UI suite pushes with a real client: an OCI layout written here (nothing is
// pulled from the internet) holding a two-platform index whose images have a full config (env,
// entrypoint, labels, history), as a build would make them.
import { gzipSync } from 'node:zlib';
import { MT, OciLayout, sha256, smallLayer, type Descriptor } from '../clients/harness/images.ts';

export interface PushedLayout {
  readonly dir: string;
  readonly index: Descriptor;
  readonly images: { platform: string; digest: string; layers: number; size: number }[];
}

/** `app:1.0` = an index of linux/amd64 and linux/arm64 images, each of three layers. */
export function writeAppLayout(dir: string, tag: string): PushedLayout {
  const layout = new OciLayout(dir);
  const images = (['amd64', 'arm64'] as const).map((architecture) => {
    const raws = [
      smallLayer(`base-${architecture}`, 3),
      smallLayer(`deps-${architecture}`, 5),
      smallLayer(`app-${architecture}`, 2),
    ];
    const layers = raws.map((raw) => layout.addBlob(gzipSync(raw, { level: 1 }), MT.ociLayerGzip));
    const config = Buffer.from(
      JSON.stringify({
        architecture,
        os: 'linux',
        created: '2024-05-06T07:08:09Z',
        config: {
          Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'APP_MODE=production'],
          Entrypoint: ['/usr/local/bin/app'],
          Cmd: ['--serve'],
          WorkingDir: '/srv',
          ExposedPorts: { '8080/tcp': {} },
          Labels: { 'org.opencontainers.image.source': 'https://example.com/team/app', maintainer: 'team-a' },
        },
        rootfs: { type: 'layers', diff_ids: raws.map((r) => sha256(r)) },
        history: [
          { created: '2024-05-06T07:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:base in / ' },
          {
            created: '2024-05-06T07:05:00Z',
            created_by: 'RUN /bin/sh -c apk add --no-cache ca-certificates # buildkit',
          },
          { created: '2024-05-06T07:08:00Z', created_by: 'COPY app /usr/local/bin/app # buildkit' },
          {
            created: '2024-05-06T07:08:09Z',
            created_by: 'ENTRYPOINT ["/usr/local/bin/app"]',
            empty_layer: true,
          },
        ],
      }),
    );
    const configDesc = layout.addBlob(config, MT.ociConfig);
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: configDesc, layers }),
    );
    const desc = layout.addBlob(manifest, MT.ociManifest);
    return {
      descriptor: { ...desc, platform: { architecture, os: 'linux' } },
      platform: `linux/${architecture}`,
      digest: desc.digest,
      layers: layers.length,
      size: configDesc.size + layers.reduce((t, l) => t + l.size, 0),
    };
  });
  const index = layout.addIndex(images.map((i) => i.descriptor));
  layout.tag(tag, index);
  return { dir, index, images: images.map(({ descriptor: _d, ...rest }) => rest) };
}
