/** Test helper: checks an RFC 9457 problem answer the way a client would read it. */
import { expect } from "bun:test";

/** Expects an RFC 9457 problem with `status`, and no stack trace in it; returns its body. */
export async function expectProblem(response: Response, status: number): Promise<Record<string, unknown>> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toBe("application/problem+json");
  const text = await response.text();
  expect(text).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body.status).toBe(status);
  expect(String(body.type)).toMatch(/^urn:turnpike:problem:[a-z-]+$/);
  expect(typeof body.title).toBe("string");
  expect(typeof body.detail).toBe("string");
  expect(body.request_id).toBe(response.headers.get("x-request-id"));
  return body;
}
