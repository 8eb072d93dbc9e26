/**
 * Builds the single executable `dist/turnpike` with `bun build --compile`.
 * The binary does not read `.env` or `bunfig.toml` from the directory it runs in.
 */
import { $ } from "bun";

const outfile = process.argv[2] ?? "dist/turnpike";
await $`mkdir -p dist`;
await $`bun build --compile --minify --no-compile-autoload-dotenv --no-compile-autoload-bunfig src/main.ts --outfile ${outfile}`;
console.log(`built ${outfile}`);
