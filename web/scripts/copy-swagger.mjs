// /docs is served from the relay itself (no CDN at run time): copy Swagger UI's two assets next to the build.
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const source = dirname(require.resolve("swagger-ui-dist/package.json"));
const target = new URL("../../claudenest/relay/static/docs/", import.meta.url).pathname;
mkdirSync(target, { recursive: true });
for (const name of ["swagger-ui.css", "swagger-ui-bundle.js", "LICENSE", "NOTICE"]) copyFileSync(join(source, name), join(target, name));
