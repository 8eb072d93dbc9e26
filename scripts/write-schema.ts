/** Writes the published config schema, `schema/turnpike.schema.json`, from the code. */
import { buildConfigSchema } from "../src/config/schema.ts";
import { builtinPolicies } from "../src/policies/index.ts";

const schema = buildConfigSchema(builtinPolicies());
await Bun.write("schema/turnpike.schema.json", JSON.stringify(schema, null, 2) + "\n");
console.log("wrote schema/turnpike.schema.json");
