/**
 * Test helper: a throwaway certificate authority and leaf certificates made with the
 * `openssl` command line at test time, so no private key is ever committed.
 *
 *     const ca = createTestCa();
 *     const a = ca.issue({ file: "a", commonName: "a.example.test", dnsNames: ["a.example.test"] });
 *     // a.certPath, a.keyPath: PEM files in ca.dir; a.cert / a.key: their text
 */
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A leaf certificate and its key, written as PEM files. */
export interface TestCertificate {
  /** PEM text of the certificate. */
  cert: string;
  /** PEM text of the unencrypted private key. */
  key: string;
  certPath: string;
  keyPath: string;
  /** Serial number as openssl prints it: upper-case hex, e.g. "1001". */
  serial: string;
  commonName: string;
}

/** What to put in a leaf certificate. */
export interface LeafRequest {
  /** Base name of the files in the CA's folder: `<file>.pem` and `<file>.key`. */
  file: string;
  commonName: string;
  /** DNS subject alternative names; none means a certificate without SANs. */
  dnsNames?: string[];
  /** URI subject alternative names, e.g. `spiffe://example/svc`. */
  uris?: string[];
  /** `client` makes a client certificate (extendedKeyUsage clientAuth); default `server`. */
  usage?: "server" | "client";
  /** Extra subject RDNs after the CN, e.g. `/O=Acme`. */
  subjectSuffix?: string;
}

/** A certificate authority whose root the test clients trust. */
export interface TestCa {
  /** Folder holding every file this CA wrote. */
  dir: string;
  /** PEM text of the CA certificate (what clients pass as `ca`). */
  cert: string;
  certPath: string;
  /** Issues a leaf certificate signed by this CA; serials count up from 0x1001. */
  issue(request: LeafRequest): TestCertificate;
  /** A fresh key that belongs to no certificate (for "key does not match" cases). */
  strayKey(file: string): string;
}

/** Runs openssl; throws with its stderr if it fails. */
function openssl(args: string[], cwd: string): void {
  const result = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  if (result.exitCode !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${result.stderr.toString()}`);
}

// P-256 keys are generated in milliseconds, unlike RSA, and every TLS client here speaks ECDSA.
const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** Creates a CA in a new temp folder (or in `dir`). */
export function createTestCa(dir: string = mkdtempSync(join(tmpdir(), "turnpike-certs-"))): TestCa {
  const certPath = join(dir, "ca.pem");
  openssl(
    [
      "req", "-x509", ...NEW_EC_KEY,
      "-subj", "/CN=Turnpike Test CA",
      "-days", "2",
      "-keyout", "ca.key",
      "-out", "ca.pem",
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  let nextSerial = 0x1001;
  return {
    dir,
    cert: readFileSync(certPath, "utf8"),
    certPath,
    issue(request) {
      const serial = (nextSerial++).toString(16).toUpperCase();
      const { file, commonName, dnsNames = [], uris = [] } = request;
      const usage = request.usage === "client" ? "clientAuth" : "serverAuth";
      const extensions = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", `extendedKeyUsage=${usage}`];
      const names = [...dnsNames.map((name) => `DNS:${name}`), ...uris.map((uri) => `URI:${uri}`)];
      if (names.length > 0) extensions.push(`subjectAltName=${names.join(",")}`);
      writeFileSync(join(dir, `${file}.ext`), `${extensions.join("\n")}\n`);
      openssl(["req", "-new", ...NEW_EC_KEY, "-subj", `/CN=${commonName}${request.subjectSuffix ?? ""}`, "-keyout", `${file}.key`, "-out", `${file}.csr`], dir);
      openssl(
        ["x509", "-req", "-in", `${file}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", `0x${serial}`, "-days", "2", "-extfile", `${file}.ext`, "-out", `${file}.pem`],
        dir,
      );
      const certPath = join(dir, `${file}.pem`);
      const keyPath = join(dir, `${file}.key`);
      return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8"), certPath, keyPath, serial, commonName };
    },
    strayKey(file) {
      openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${file}.key`], dir);
      return readFileSync(join(dir, `${file}.key`), "utf8");
    },
  };
}

/** What `openssl s_client` saw of the server's certificate, or why the handshake failed. */
export interface ServedCertificate {
  /** True when a handshake completed and a certificate came back. */
  ok: boolean;
  /** Common name of the subject, e.g. "a.example.test". */
  commonName: string;
  /** Upper-case hex serial, e.g. "1001". */
  serial: string;
  /** DNS names of the subject alternative names. */
  dnsNames: string[];
  /** The negotiated protocol, e.g. "TLSv1.3". */
  protocol: string;
  /** Everything s_client printed (for failure messages). */
  output: string;
}

/** Options of one `openssl s_client` handshake. */
export interface HandshakeOptions {
  /** SNI to send; null sends none. */
  serverName: string | null;
  /** Restrict the client to one protocol version, e.g. "tls1_1". */
  version?: "tls1" | "tls1_1" | "tls1_2" | "tls1_3";
  /** CA file to verify against (the result's `output` then shows the verify code). */
  caFile?: string;
}

/**
 * Connects with `openssl s_client`, completes (or fails) one handshake, and reports the
 * certificate served. Bounded by a 10 s timeout.
 */
export async function handshake(port: number, options: HandshakeOptions): Promise<ServedCertificate> {
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, "-showcerts"];
  args.push(...(options.serverName === null ? ["-noservername"] : ["-servername", options.serverName]));
  if (options.version) {
    args.push(`-${options.version}`);
    // OpenSSL 3 refuses TLS 1.0/1.1 on its own side at the default security level; level 0
    // lets the client really offer them, so a failed handshake is the server's refusal.
    if (options.version === "tls1" || options.version === "tls1_1") args.push("-cipher", "DEFAULT:@SECLEVEL=0");
  }
  if (options.caFile) args.push("-CAfile", options.caFile, "-verify_return_error");
  const client = Bun.spawn(["openssl", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  const [stdout, stderr] = await Promise.all([new Response(client.stdout).text(), new Response(client.stderr).text()]);
  await client.exited;
  const output = `${stdout}\n${stderr}`;
  const pem = stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0];
  const protocol = stdout.match(/New, (TLSv[\d.]+), Cipher is/)?.[1] ?? stdout.match(/^\s*Protocol\s*:\s*(\S+)/m)?.[1] ?? "";
  if (!pem || !/Cipher is (?!\(NONE\))/.test(stdout)) return { ok: false, commonName: "", serial: "", dnsNames: [], protocol, output };
  const x509 = new X509Certificate(pem);
  const dnsNames = (x509.subjectAltName ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.startsWith("DNS:"))
    .map((part) => part.slice(4));
  return { ok: true, commonName: x509.subject.match(/^CN=(.*)$/m)?.[1] ?? "", serial: x509.serialNumber.toUpperCase().replace(/^0+(?=.)/, ""), dnsNames, protocol, output };
}
