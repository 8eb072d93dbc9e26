/** Test child: maps the shared memory file given and adds to counters (see shared-table.test.ts). */
import { FULL, openSharedTable } from "../../src/shared/index.ts";

const [path, times, bound] = process.argv.slice(2);
const table = openSharedTable(path!);
let admitted = 0;
for (let i = 0; i < Number(times); i++) {
  table.add("total", 1, 0);
  const result = table.addIfBelow("bounded", 1, Number(bound), 0);
  if (result !== FULL && result.admitted) admitted++;
}
process.stdout.write(String(admitted));
