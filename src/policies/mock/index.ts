/**
 * `mock`: answers the request itself with a fixed or echoed response; the upstream is
 * not called. With `when`, it can stub one case of a route:
 *
 *     - type: mock
 *       when: { headers: { x-mock: "1" } }
 *       config: { status: 503, json: { error: maintenance } }
 */
import { answerMock, compileMock, mockSchema, type MockConfig } from "../../core/mock.ts";
import type { PolicyFactory } from "../../core/policy.ts";

export const mockPolicy: PolicyFactory<MockConfig> = {
  type: "mock",
  description: "Answer with a fixed or echoed response instead of calling the upstream.",
  schema: mockSchema,
  create(config) {
    const mock = compileMock(config);
    return {
      type: "mock",
      onRequest: (exchange) => answerMock(mock, exchange, exchange.url.pathname, exchange.upstreamHeaders),
    };
  },
};
