/**
 * Query redaction for log lines: values of listed names become [redacted], whatever the
 * case or percent-encoding of the name; everything else stays as sent.
 */
import { expect, test } from "bun:test";
import { compileRedaction, redactQuery } from "../../src/observability/redaction.ts";

const names = compileRedaction({ query_params: ["Custom_Param"], headers: ["X-Api-Key"] });

test("listed names are redacted, others kept, order and separators unchanged", () => {
  expect(redactQuery("?page=2&api_key=abc&sort=asc", names.queryParams)).toBe("page=2&api_key=[redacted]&sort=asc");
  expect(redactQuery("?x=1&token=2&token=3", names.queryParams)).toBe("x=1&token=[redacted]&token=[redacted]");
  expect(redactQuery("?a=1&&key=2&", names.queryParams)).toBe("a=1&&key=[redacted]&");
  expect(redactQuery("?custom_param=9", names.queryParams)).toBe("custom_param=[redacted]");
  expect(redactQuery("?page=2", names.queryParams)).toBe("page=2");
  expect(redactQuery("?", names.queryParams)).toBe("");
});

test("names match without case and after percent-decoding; a bare name is redacted too", () => {
  expect(redactQuery("?API%5FKEY=x&Token=y&b=1", names.queryParams)).toBe("API%5FKEY=[redacted]&Token=[redacted]&b=1");
  expect(redactQuery("?Access_Token", names.queryParams)).toBe("Access_Token=[redacted]");
  expect(redactQuery("?%ZZ=1&password=2", names.queryParams)).toBe("%ZZ=1&password=[redacted]");
});

test("credential headers are always redacted; configured ones are added in lower case", () => {
  for (const name of ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"]) expect(names.headers.has(name)).toBe(true);
  expect(compileRedaction(undefined).headers.has("x-api-key")).toBe(false);
});
