/**
 * CORS as a real browser enforces it: headless Chromium loads a page from one origin whose
 * script calls the gateway on another. An allowed origin reads responses (simple and
 * preflighted, exposed headers); a method or header the policy does not allow, and every
 * call from an origin not allowed, is blocked by the browser. Needs `chromium` on PATH
 * (scripts/test.sh installs it); skipped without it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { basics, startGateway, type Gateway } from "../../../test/helpers/gateway.ts";
import { startUpstream, type TestUpstream } from "../../../test/helpers/upstream.ts";

const CHROMIUM = Bun.which("chromium") ?? Bun.which("chromium-browser");

let upstream: TestUpstream;
let gateway: Gateway;
let allowedPage: ReturnType<typeof Bun.serve>;
let otherPage: ReturnType<typeof Bun.serve>;

/** The page's script: each call's outcome as text, written into the DOM when all are done. */
function page(gatewayOrigin: string): string {
  return `<!doctype html><html><body><pre id="result">pending</pre><script>
const gw = ${JSON.stringify(gatewayOrigin)};
const attempt = async (init) => {
  try {
    const response = await fetch(gw + "/api/items", init);
    return response.status + " " + (response.headers.get("x-total-count") ?? "-") + " " + (await response.text()).length;
  } catch (error) {
    return "blocked";
  }
};
(async () => {
  const result = {
    simple: await attempt({}),
    preflighted: await attempt({ method: "PUT", headers: { "content-type": "application/json", "x-trace": "t1" }, body: "{}" }),
    methodNotAllowed: await attempt({ method: "DELETE" }),
    headerNotAllowed: await attempt({ headers: { "x-secret": "1" } }),
  };
  document.getElementById("result").textContent = JSON.stringify(result);
})();
</script></body></html>`;
}

function servePage(gatewayOrigin: string) {
  return Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(page(gatewayOrigin), { headers: { "content-type": "text/html" } }) });
}

/** Loads `url` in headless Chromium and returns what the page wrote. */
async function visit(url: string): Promise<Record<string, string>> {
  const child = Bun.spawn(
    [CHROMIUM!, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--virtual-time-budget=15000", "--dump-dom", url],
    { stdout: "pipe", stderr: "pipe", timeout: 45_000 },
  );
  const dom = await new Response(child.stdout).text();
  await child.exited;
  const text = dom.match(/<pre id="result">([^<]*)<\/pre>/)?.[1];
  if (!text || text === "pending") throw new Error(`the page did not finish: ${dom.slice(0, 500)}`);
  return JSON.parse(text.replaceAll("&quot;", '"')) as Record<string, string>;
}

beforeAll(async () => {
  if (!CHROMIUM) return;
  upstream = startUpstream(() => new Response("items", { headers: { "x-total-count": "3" } }));
  // The page origins are 127.0.0.1:<port>; the gateway is called as localhost: another origin.
  allowedPage = servePage("http://placeholder");
  otherPage = servePage("http://placeholder");
  gateway = await startGateway(
    (ports) => `${basics(ports)}
upstreams:
  backend:
    targets: [${upstream.url}]
pre_flow:
  - type: cors
    config:
      origins: [http://127.0.0.1:${allowedPage.port}]
      methods: [GET, POST, PUT]
      headers: [content-type, x-trace]
      expose_headers: [x-total-count]
routes:
  - name: api
    match: { paths: ["/api/*"] }
    upstream: backend
`,
    { workers: 1 },
  );
  const origin = `http://localhost:${gateway.ports.port}`;
  allowedPage.reload({ fetch: () => new Response(page(origin), { headers: { "content-type": "text/html" } }) });
  otherPage.reload({ fetch: () => new Response(page(origin), { headers: { "content-type": "text/html" } }) });
});

afterAll(async () => {
  if (!CHROMIUM) return;
  await gateway.stop();
  upstream.stop();
  allowedPage.stop(true);
  otherPage.stop(true);
});

test.skipIf(!CHROMIUM)("an allowed origin reads answers; what the policy does not allow is blocked by the browser", async () => {
  const result = await visit(`http://127.0.0.1:${allowedPage.port}/`);
  expect(result).toEqual({ simple: "200 3 5", preflighted: "200 3 5", methodNotAllowed: "blocked", headerNotAllowed: "blocked" });
  // The refused preflights never reached the upstream; the allowed PUT did.
  expect(upstream.seen.filter((s) => s.method === "DELETE")).toEqual([]);
  expect(upstream.seen.some((s) => s.method === "PUT")).toBe(true);
  expect(upstream.seen.some((s) => s.method === "OPTIONS")).toBe(false);
});

test.skipIf(!CHROMIUM)("a page from an origin that is not allowed cannot read anything", async () => {
  const result = await visit(`http://127.0.0.1:${otherPage.port}/`);
  expect(result).toEqual({ simple: "blocked", preflighted: "blocked", methodNotAllowed: "blocked", headerNotAllowed: "blocked" });
});
