/**
 * Client certificates (mTLS) through the built binary with real clients (fetch with
 * certificates, openssl s_client): listeners that request or require certificates,
 * consumers identified by subject, subjectAltName or fingerprint, routes that require a
 * certificate, 421 when the Host is not the TLS server name (also without SNI), upstreams
 * reached with a client certificate and a private CA, and certificate file errors.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa, handshake, type TestCa, type TestCertificate } from "../../../test/helpers/certs.ts";
import { BINARY, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { expectProblem } from "../../../test/helpers/problem.ts";

let serverCa: TestCa;
let clientCa: TestCa;
let otherCa: TestCa;
let a: TestCertificate;
let b: TestCertificate;
let upstreamCert: TestCertificate;
let alice: TestCertificate;
let svc: TestCertificate;
let bob: TestCertificate;
let carol: TestCertificate;
let mallory: TestCertificate;
let gatewayClient: TestCertificate;
let upstream: ReturnType<typeof Bun.serve>;
let bulk: ReturnType<typeof Bun.serve>;
const BIG = new Uint8Array(5 * 1024 * 1024).map((_, i) => (i * 7 + (i >> 10)) & 255);
let gateway: Gateway;

const fingerprint = (cert: TestCertificate) => new X509Certificate(cert.cert).fingerprint256;

beforeAll(async () => {
  serverCa = createTestCa();
  clientCa = createTestCa();
  otherCa = createTestCa();
  a = serverCa.issue({ file: "a", commonName: "a.test", dnsNames: ["a.test"] });
  b = serverCa.issue({ file: "b", commonName: "b.test", dnsNames: ["b.test"] });
  upstreamCert = serverCa.issue({ file: "upstream", commonName: "upstream.test", dnsNames: ["upstream.test"] });
  alice = clientCa.issue({ file: "alice", commonName: "alice", subjectSuffix: "/O=Acme", usage: "client" });
  svc = clientCa.issue({ file: "svc", commonName: "svc", uris: ["spiffe://turnpike.test/svc"], usage: "client" });
  bob = clientCa.issue({ file: "bob", commonName: "bob", usage: "client" });
  carol = clientCa.issue({ file: "carol", commonName: "carol", usage: "client" });
  gatewayClient = clientCa.issue({ file: "gateway", commonName: "gateway", usage: "client" });
  mallory = otherCa.issue({ file: "mallory", commonName: "alice", subjectSuffix: "/O=Acme", usage: "client" });

  // An upstream that itself requires a client certificate from clientCa.
  upstream = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: upstreamCert.cert, key: upstreamCert.key, ca: clientCa.cert, requestCert: true, rejectUnauthorized: true },
    fetch: (request) => Response.json({ path: new URL(request.url).pathname, headers: Object.fromEntries(request.headers) }),
  });

  // A plain upstream for big bodies both ways: it answers an upload with its SHA-256.
  bulk = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    maxRequestBodySize: 64 * 1024 * 1024,
    async fetch(request) {
      if (request.method === "POST") return new Response(new Bun.CryptoHasher("sha256").update(await request.arrayBuffer()).digest("hex"));
      return new Response(BIG);
    },
  });

  gateway = await startGateway(
    (ports) => `listeners:
  - address: 127.0.0.1
    port: ${ports.port}
    tls:
      certificates:
        - { cert: ${a.certPath}, key: ${a.keyPath} }
        - { cert: ${b.certPath}, key: ${b.keyPath} }
      client_certificates: { ca: ${clientCa.certPath}, mode: request }
  - address: 127.0.0.1
    port: ${ports.port2}
    tls:
      certificates: [{ cert: ${a.certPath}, key: ${a.keyPath} }]
      client_certificates: { ca: [${clientCa.certPath}] }
admin:
  port: ${ports.adminPort}
consumers:
  - name: alice
    credentials: [{ type: mtls, subject: "CN=alice,O=Acme" }]
  - name: svc
    credentials: [{ type: mtls, san: "URI:spiffe://turnpike.test/svc" }]
  - name: bob
    credentials: [{ type: mtls, fingerprint: "${fingerprint(bob)}" }]
upstreams:
  echo:
    type: mock
    mock: { echo: true }
  secure:
    targets: [https://127.0.0.1:${upstream.port}]
    tls: { ca: ${serverCa.certPath}, cert: ${gatewayClient.certPath}, key: ${gatewayClient.keyPath}, server_name: upstream.test }
  bulk:
    targets: [http://127.0.0.1:${bulk.port}]
  secure-without-cert:
    targets: [https://127.0.0.1:${upstream.port}]
    tls: { ca: ${serverCa.certPath}, server_name: upstream.test }
  secure-wrong-ca:
    targets: [https://127.0.0.1:${upstream.port}]
    tls: { ca: ${otherCa.certPath}, cert: ${gatewayClient.certPath}, key: ${gatewayClient.keyPath}, server_name: upstream.test }
routes:
  - name: public
    match: { paths: ["/public"] }
    upstream: echo
  - name: private
    match: { paths: ["/private"] }
    upstream: echo
    policies: [{ type: mtls-auth }]
  - name: any-cert
    match: { paths: ["/any-cert"] }
    upstream: echo
    policies: [{ type: mtls-auth, config: { consumer: optional } }]
  - name: bulk
    match: { paths: ["/bulk"] }
    upstream: bulk
    policies: [{ type: mtls-auth }]
  - name: secure
    match: { paths: ["/secure"] }
    upstream: secure
  - name: secure-without-cert
    match: { paths: ["/secure-without-cert"] }
    upstream: secure-without-cert
  - name: secure-wrong-ca
    match: { paths: ["/secure-wrong-ca"] }
    upstream: secure-wrong-ca
`,
    { workers: 2 },
  );
});

afterAll(async () => {
  expect(await gateway.stop()).toBe(0);
  upstream.stop(true);
  bulk.stop(true);
});

interface CallOptions {
  port?: number;
  serverName?: string;
  host?: string;
  client?: TestCertificate;
}

/** A request with Bun's fetch on a fresh connection, presenting `client` if given. */
function call(path: string, options: CallOptions = {}): Promise<Response> {
  const serverName = options.serverName ?? "a.test";
  const port = options.port ?? gateway.ports.port;
  return fetch(`https://127.0.0.1:${port}${path}`, {
    headers: { host: options.host ?? serverName, connection: "close" },
    keepalive: false,
    tls: {
      ca: serverCa.cert,
      serverName,
      checkServerIdentity: () => undefined,
      ...(options.client ? { cert: options.client.cert, key: options.client.key } : {}),
    },
  } as RequestInit);
}

/** One HTTP/1.1 request through `openssl s_client`; the raw response text. */
async function opensslRequest(port: number, serverName: string | null, host: string, path: string, client?: TestCertificate): Promise<string> {
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, "-quiet", "-ign_eof", "-CAfile", serverCa.certPath];
  args.push(...(serverName === null ? ["-noservername"] : ["-servername", serverName]));
  if (client) args.push("-cert", client.certPath, "-key", client.keyPath);
  const child = Bun.spawn(["openssl", ...args], {
    stdin: new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    stdout: "pipe",
    stderr: "pipe",
    timeout: 10_000,
  });
  const text = await new Response(child.stdout).text();
  await child.exited;
  return text;
}

const statusOf = (raw: string) => Number(raw.match(/^HTTP\/1\.1 (\d{3})/m)?.[1] ?? 0);
const consumerOf = async (response: Response) => ((await response.json()) as { headers: Record<string, string> }).headers["x-consumer-id"];

describe("client certificates identify consumers", () => {
  test("by subject (either RDN order), subjectAltName and fingerprint", async () => {
    const byAlice = await call("/private", { client: alice });
    expect(byAlice.status).toBe(200);
    expect(await consumerOf(byAlice)).toBe("alice");
    expect(await consumerOf(await call("/private", { client: svc }))).toBe("svc");
    expect(await consumerOf(await call("/private", { client: bob }))).toBe("bob");
  });

  test("a verified certificate of no consumer gets 403; optional lets it pass", async () => {
    const body = await expectProblem(await call("/private", { client: carol }), 403);
    expect(body.type).toBe("urn:turnpike:problem:forbidden");
    const optional = await call("/any-cert", { client: carol });
    expect(optional.status).toBe(200);
    expect(await consumerOf(optional)).toBeUndefined();
  });

  test("without a certificate: public routes pass, routes that require one get 401", async () => {
    expect((await call("/public")).status).toBe(200);
    const body = await expectProblem(await call("/private"), 401);
    expect(body.detail).toContain("client certificate");
    await expectProblem(await call("/any-cert"), 401);
  });

  test("a certificate from another CA (same subject) is not trusted", async () => {
    expect((await call("/public", { client: mallory })).status).toBe(200);
    const body = await expectProblem(await call("/private", { client: mallory }), 401);
    expect(body.detail).toBe("The credentials are not valid.");
  });
});

test("megabytes flow both ways through the TLS bridge, intact", async () => {
  const download = await call("/bulk", { client: alice });
  expect(download.status).toBe(200);
  expect(Buffer.from(await download.arrayBuffer()).equals(Buffer.from(BIG))).toBe(true);
  const upload = await fetch(`https://127.0.0.1:${gateway.ports.port}/bulk`, {
    method: "POST",
    body: BIG,
    headers: { host: "a.test" },
    tls: { ca: serverCa.cert, serverName: "a.test", checkServerIdentity: () => undefined, cert: alice.cert, key: alice.key },
  } as RequestInit);
  expect(await upload.text()).toBe(new Bun.CryptoHasher("sha256").update(BIG).digest("hex"));
  // Keep-alive: several requests on one connection keep the connection's identity.
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`https://127.0.0.1:${gateway.ports.port}/private`, {
      headers: { host: "a.test" },
      tls: { ca: serverCa.cert, serverName: "a.test", checkServerIdentity: () => undefined, cert: bob.cert, key: bob.key },
    } as RequestInit);
    expect(await consumerOf(response)).toBe("bob");
  }
});

describe("the TLS server name and the Host must agree", () => {
  test("SNI for one host and Host for another gets 421", async () => {
    const response = await call("/private", { client: alice, serverName: "a.test", host: "b.test" });
    const body = await expectProblem(response, 421);
    expect(body.detail).toContain("a.test");
    expect((await call("/public", { serverName: "b.test" })).status).toBe(200);
    expect((await call("/public", { serverName: "a.test", host: "a.test:443" })).status).toBe(200);
  });

  test("openssl s_client: SNI picks the certificate; without SNI only the default certificate's hosts or an IP", async () => {
    const served = await handshake(gateway.ports.port, { serverName: "b.test" });
    expect(served.commonName).toBe("b.test");
    expect((await handshake(gateway.ports.port, { serverName: null })).commonName).toBe("a.test");
    expect(statusOf(await opensslRequest(gateway.ports.port, "b.test", "b.test", "/public"))).toBe(200);
    expect(statusOf(await opensslRequest(gateway.ports.port, "b.test", "a.test", "/public"))).toBe(421);
    expect(statusOf(await opensslRequest(gateway.ports.port, null, "a.test", "/public"))).toBe(200);
    expect(statusOf(await opensslRequest(gateway.ports.port, null, "127.0.0.1", "/public"))).toBe(200);
    const bypass = await opensslRequest(gateway.ports.port, null, "b.test", "/private", alice);
    expect(statusOf(bypass)).toBe(421);
    expect(bypass).toContain("application/problem+json");
    expect(statusOf(await opensslRequest(gateway.ports.port, null, "127.0.0.1", "/private", alice))).toBe(200);
  });
});

describe("a listener that requires client certificates", () => {
  test("refuses the handshake without a trusted certificate", async () => {
    expect((await call("/public", { port: gateway.ports.port2, client: alice })).status).toBe(200);
    await expect(call("/public", { port: gateway.ports.port2 })).rejects.toThrow();
    await expect(call("/public", { port: gateway.ports.port2, client: mallory })).rejects.toThrow();
    expect(statusOf(await opensslRequest(gateway.ports.port2, "a.test", "a.test", "/public"))).toBe(0);
    expect(statusOf(await opensslRequest(gateway.ports.port2, "a.test", "a.test", "/public", alice))).toBe(200);
  });
});

describe("upstream TLS", () => {
  test("the gateway presents its client certificate and verifies the upstream's CA", async () => {
    const response = await call("/secure");
    expect(response.status).toBe(200);
    expect(((await response.json()) as { path: string }).path).toBe("/secure");
  });
  test("without a client certificate, or trusting another CA, the upstream cannot be reached (502)", async () => {
    await expectProblem(await call("/secure-without-cert"), 502);
    await expectProblem(await call("/secure-wrong-ca"), 502);
  });
});

test("bad certificate files are config errors with path and line", () => {
  const dir = mkdtempSync(join(tmpdir(), "turnpike-mtls-"));
  writeFileSync(join(dir, "not-pem.pem"), "hello\n");
  const file = join(dir, "bad.yaml");
  writeFileSync(
    file,
    `listeners:
  - port: 8443
    tls:
      certificates: [{ cert: ${a.certPath}, key: ${a.keyPath} }]
      client_certificates:
        ca: [missing-ca.pem, not-pem.pem, ${a.certPath}]
upstreams:
  plain:
    targets: [http://127.0.0.1:9]
    tls: { ca: ${serverCa.certPath} }
  half:
    targets: [https://127.0.0.1:9]
    tls: { cert: ${gatewayClient.certPath} }
  mismatched:
    targets: [https://127.0.0.1:9]
    tls: { cert: ${gatewayClient.certPath}, key: ${alice.keyPath} }
routes:
  - { name: a, upstream: plain }
`,
  );
  const run = Bun.spawnSync([BINARY, "validate", file], { stdio: ["ignore", "pipe", "pipe"] });
  const out = run.stdout.toString() + run.stderr.toString();
  expect(run.exitCode).toBe(1);
  expect(out).toMatch(/listeners\[0\]\.tls\.client_certificates\.ca\[0\]: cannot read .*missing-ca\.pem: no such file \(line 6/);
  expect(out).toMatch(/listeners\[0\]\.tls\.client_certificates\.ca\[1\]: .*not-pem\.pem holds no PEM certificate \(.*\(line 6/);
  expect(out).toMatch(/listeners\[0\]\.tls\.client_certificates\.ca\[2\]: .*a\.pem holds a certificate that is not a CA .*\(line 6/);
  expect(out).toMatch(/upstreams\.plain\.tls: tls applies to https:\/\/ targets, and this upstream has none \(line 10/);
  expect(out).toMatch(/upstreams\.half\.tls: cert and key go together .*\(line 13/);
  expect(out).toMatch(/upstreams\.mismatched\.tls\.key: the private key in .*alice\.key does not belong to the certificate .*\(line 16/);
});

test("a reload that changes the client CA file restarts the workers on the new CA", async () => {
  const rotated = await startGateway(
    (ports) => `listeners:
  - address: 127.0.0.1
    port: ${ports.port}
    tls:
      certificates: [{ cert: ${a.certPath}, key: ${a.keyPath} }]
      client_certificates: { ca: client-ca.pem, mode: request }
admin:
  port: ${ports.adminPort}
upstreams:
  echo: { type: mock, mock: { echo: true } }
routes:
  - name: private
    match: { paths: ["/private"] }
    upstream: echo
    policies: [{ type: mtls-auth, config: { consumer: optional } }]
`,
    { workers: 1, files: { "client-ca.pem": clientCa.cert } },
  );
  try {
    const as = (client: TestCertificate) => call("/private", { port: rotated.ports.port, client });
    expect((await as(alice)).status).toBe(200);
    expect((await as(mallory)).status).toBe(401);
    writeFileSync(join(rotated.dir, "client-ca.pem"), otherCa.cert);
    expect(await rotated.reload()).toBe("reloaded");
    expect(rotated.logs()).toContain('"mode":"rolling restart"');
    // New connections meet the new workers; allow the old ones a moment to hand over.
    const deadline = performance.now() + 20_000;
    let statuses: number[] = [];
    while (performance.now() < deadline) {
      statuses = [(await as(mallory)).status, (await as(alice)).status];
      if (statuses[0] === 200 && statuses[1] === 401) break;
      await Bun.sleep(100);
    }
    expect(statuses).toEqual([200, 401]);
    // A CA file that is not a CA is refused; the current one keeps serving.
    writeFileSync(join(rotated.dir, "client-ca.pem"), alice.cert);
    expect(await rotated.reload()).toBe("failed");
    expect((await as(mallory)).status).toBe(200);
  } finally {
    expect(await rotated.stop()).toBe(0);
  }
});
