/** Test preload: the integration tests drive the built binary, so build it if missing. */
import { setDefaultTimeout } from "bun:test";
import { existsSync } from "node:fs";
import { BINARY } from "./helpers/gateway.ts";

if (!existsSync(BINARY)) {
  const build = Bun.spawnSync(["bun", "run", "build"], { cwd: `${import.meta.dir}/..`, stdio: ["ignore", "inherit", "inherit"] });
  if (build.exitCode !== 0) throw new Error("bun run build failed");
}

// Integration tests start real processes; 5 s (Bun's default) is too short on a busy machine.
// setDefaultTimeout here covers only the first test file Bun loads: run the suite with
// `--timeout 60000` (scripts/test.sh and `bun run test` do).
setDefaultTimeout(60_000);
