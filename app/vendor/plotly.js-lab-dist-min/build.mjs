// Builds plotly-lab.min.js: plotly.js with only the trace types Lottery Lab draws in its partial
// bundle (scatter, which plotly.js's core always has, bar and heatmap), as plotly.js's own
// partial bundles are built (tasks/partial_bundle.mjs and tasks/util/bundle_wrapper.mjs of
// plotly.js): esbuild, minified, attribute descriptions stripped (tasks/compress_attributes.js),
// the same licence header and UMD wrapper that sets window.Plotly. See README.md.
//
//   mkdir /tmp/plotly-lab && cd /tmp/plotly-lab
//   npm install plotly.js@4.1.1 esbuild@0.28.2
//   node /path/to/app/vendor/plotly.js-lab-dist-min/build.mjs
//
// Modules are resolved from the current directory; the bundle is written next to this script.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(process.cwd(), 'package.json'));
const { build } = require('esbuild');
const plotlyDir = dirname(require.resolve('plotly.js/package.json'));
const version = require('plotly.js/package.json').version;
const wanted = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
if (version !== wanted.version) {
    throw new Error(`plotly.js ${version} installed, package.json says ${wanted.version}`);
}

// package.json's "traces" (app/bundles.py reads them too); scatter is in plotly.js/lib/core
const TRACES = wanted.traces.filter((t) => t !== 'scatter');
const entry = `'use strict';
var Plotly = require('./core');
Plotly.register([${TRACES.map((t) => `require('./${t}')`).join(', ')}]);
module.exports = Plotly;
`;

// plotly.js's tasks/compress_attributes.js: drop the attributes' descriptions and other meta
// (never read when plotting); a string, strings joined with +, or an array of strings .join(' ')
const STR = String.raw`(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")`;
const strip = new RegExp(String.raw`\b(?:description|hrName): ` +
    String.raw`(?:\[\s*${STR}(?:\s*,\s*${STR})*\s*,?\s*\]\.join\(\s*${STR}\s*\)` +
    String.raw`|${STR}(?:\s*\+\s*${STR})*)(?:\s*,|(?=\s*\}))` +  // the whole value
    String.raw`|\b(?:requiredOpts|otherOpts): \[[^\]]*\](?:\s*,|(?=\s*\}))`, 'g');
const compressAttributes = {
    name: 'compress-attributes',
    setup(b) {
        b.onLoad({ filter: /\.js$/ }, (args) => {
            let text = readFileSync(args.path, 'utf8');
            text = text.replace(strip, '');
            return { contents: text, loader: 'js' };
        });
    },
};
// CSS is required only for the map traces (maplibre-gl's stylesheet), which this bundle lacks
const noCss = {
    name: 'no-css',
    setup(b) {
        b.onResolve({ filter: /\.css$/ }, (args) => ({ path: args.path, namespace: 'no-css' }));
        b.onLoad({ filter: /.*/, namespace: 'no-css' }, () => ({ contents: '', loader: 'js' }));
    },
};

// the licence header of plotly.js's own minified bundles (tasks/header.js), naming this one
const header = readFileSync(join(plotlyDir, 'dist', 'plotly-cartesian.min.js'), 'utf8')
    .slice(0, 200).split('*/')[0].replace('(cartesian - minified)', '(lab - minified)') + '*/\n';
if (!header.includes(`plotly.js (lab - minified) v${version}`)) throw new Error(header);
const result = await build({
    stdin: { contents: entry, resolveDir: join(plotlyDir, 'lib'), sourcefile: 'index-lab.js' },
    format: 'iife',
    globalName: 'Plotly',
    bundle: true,
    minify: true,
    write: false,
    plugins: [noCss, compressAttributes],
    alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
    define: { global: 'window', 'define.amd': 'false', 'process.env.NODE_DEBUG': 'false' },
    target: 'es2016',
    logLevel: 'warning',
});
const body = result.outputFiles[0].text;
writeFileSync(join(here, 'plotly-lab.min.js'), header + [
    '(',
    ' function(root, factory) {',
    '  if (typeof module === "object" && module.exports) {',
    '   module.exports = factory();',
    '  } else {',
    '   root.moduleName = factory();',
    '  }',
    '} (typeof self !== "undefined" ? self : this, () => {',
    body,
    'window.Plotly = Plotly;',
    'return Plotly;',
    '}));',
    '',
].join('\n'));
console.log(`plotly-lab.min.js: plotly.js ${version}, traces ${wanted.traces.join(', ')}, ` +
            `${Math.round((header.length + body.length) / 1024)} KiB`);
