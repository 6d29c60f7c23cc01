import pkg from '../package.json' with { type: 'json' };

/** Berth's version, as package.json says (shown to administrators in the web UI). */
export const BERTH_VERSION: string = pkg.version;
