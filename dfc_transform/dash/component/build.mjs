// Builds dfc_upload.min.js, the bundle Dash serves, from src/. React comes from the page
// (Dash loads it as window.React): nothing else is bundled.
//
//   npm ci && npm run build                    # writes ./dfc_upload.min.js
//   node build.mjs --outfile /tmp/check.js     # the check in tests/test_upload_protocol.py
import {build} from "esbuild";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const flag = process.argv.indexOf("--outfile");
const outfile = flag >= 0 ? process.argv[flag + 1] : join(here, "dfc_upload.min.js");

await build({
    entryPoints: [join(here, "src", "index.js")],
    outfile,
    bundle: true,
    minify: true,
    format: "iife",
    target: ["es2019"],
    jsx: "transform",
    jsxFactory: "React.createElement",
    jsxFragment: "React.Fragment",
    legalComments: "none",
    charset: "utf8",
    logLevel: "warning",
});
