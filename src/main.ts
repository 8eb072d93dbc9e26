/**
 * Turnpike command line.
 *
 *     turnpike <config>                 run the gateway (same as `turnpike run <config>`)
 *     turnpike run <config> [--workers N]
 *     turnpike validate <config>        list every config error, exit 1 if any
 *     turnpike version
 *     turnpike hash-key [KEY]           print the stored form of an API key (reads stdin without KEY)
 *     turnpike hash-password [--bcrypt] [PASSWORD]
 *     turnpike --help
 */
import { hashApiKey } from "./auth/secrets.ts";
import { ConfigLoader } from "./config/load.ts";
import { formatError } from "./config/source.ts";
import { ErrorLogOutput } from "./observability/error-log.ts";
import { createLogger } from "./observability/logger.ts";
import { runSupervisor } from "./server/supervisor.ts";
import { SHARED_MEMORY_ENV } from "./shared/memory.ts";
import { runWorker } from "./server/worker.ts";
import { VERSION } from "./version.ts";

const HELP = `Turnpike ${VERSION}: an API gateway in one executable.

Usage:
  turnpike <config.yaml> [--workers N]       run the gateway
  turnpike run <config.yaml> [--workers N]   the same
  turnpike validate <config.yaml>            check a config; every error is listed with its line
  turnpike version                           print the version
  turnpike hash-key [KEY]                    print an API key's key_hash for a consumer (KEY from stdin if absent)
  turnpike hash-password [--bcrypt] [PW]     print a password_hash (argon2id, or bcrypt) for Basic auth
  turnpike --help                            this text

Options:
  --workers N   worker processes (default: server.workers from the config, else one per CPU)

Signals:
  SIGHUP   reload the config (a config that fails to load leaves the old one serving)
  SIGTERM  drain in-flight requests, then exit 0
  SIGUSR1  reopen the access log files (after log rotation)

Environment:
  TURNPIKE_LOG_LEVEL   debug | info | warn | error (default info)
`;

function usage(message: string): never {
  console.error(`turnpike: ${message}\nRun 'turnpike --help' for usage.`);
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  if (process.env.TURNPIKE_ROLE === "worker") {
    runWorker();
    return;
  }
  // Only workers map a supervisor's shared memory; a name inherited from the environment
  // (a gateway started by another one, a test runner) would point at someone else's file.
  delete process.env[SHARED_MEMORY_ENV];
  if (argv[0] === "hash-key" || argv[0] === "hash-password") {
    await hashCommand(argv[0], argv.slice(1));
    return;
  }
  const positional: string[] = [];
  let workers: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      process.stdout.write(HELP);
      return;
    }
    if (arg === "--version" || arg === "-v") {
      console.log(VERSION);
      return;
    }
    if (arg === "--workers" || arg.startsWith("--workers=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i];
      // Digits only: Number() would also take "0x2", "1e1" or " 2".
      const count = value !== undefined && /^[0-9]+$/.test(value) ? Number(value) : NaN;
      if (!Number.isInteger(count) || count < 1 || count > 256) usage(`--workers needs a whole number from 1 to 256, not ${JSON.stringify(value ?? "")}`);
      workers = count;
      continue;
    }
    if (arg.startsWith("-")) usage(`unknown option ${arg}`);
    positional.push(arg);
  }

  const [first, second, ...rest] = positional;
  if (first === undefined) usage("no config file given");
  if (first === "version") {
    console.log(VERSION);
    return;
  }
  if (first === "validate") {
    if (second === undefined || rest.length) usage("validate takes one config file");
    const result = new ConfigLoader().loadFile(second);
    if (!result.ok) {
      for (const error of result.errors) console.error(formatError(second, error));
      console.error(`${result.errors.length} error(s).`);
      process.exit(1);
    }
    result.loaded.graph.dispose();
    console.log(`${second}: ok`);
    process.exit(0);
  }
  const file = first === "run" ? second : first;
  if (file === undefined || (first === "run" ? rest.length : second !== undefined)) usage("run takes one config file");
  const errorLog = new ErrorLogOutput();
  const log = createLogger({ role: "supervisor", pid: process.pid }, errorLog.level, errorLog.write);
  await runSupervisor({ file, workers, log, errorLog });
}

/** `hash-key` and `hash-password`: the secret comes from the argument or the first line of stdin. */
async function hashCommand(command: "hash-key" | "hash-password", args: string[]): Promise<void> {
  const bcrypt = command === "hash-password" && args[0] === "--bcrypt";
  const rest = bcrypt ? args.slice(1) : args;
  if (rest.length > 1 || rest.some((arg) => arg.startsWith("-"))) usage(`${command} takes at most one ${command === "hash-key" ? "key" : "password"}`);
  let secret = rest[0];
  if (secret === undefined) secret = (await Bun.stdin.text()).split(/\r?\n/)[0] ?? "";
  if (secret.length === 0) usage(`${command}: the ${command === "hash-key" ? "key" : "password"} is empty`);
  if (command === "hash-key") console.log(hashApiKey(secret));
  else console.log(await Bun.password.hash(secret, bcrypt ? { algorithm: "bcrypt", cost: 10 } : { algorithm: "argon2id" }));
}

await main(process.argv.slice(2));
