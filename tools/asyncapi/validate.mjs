// Validates AsyncAPI documents with the official parser (@asyncapi/parser,
// pinned in package-lock.json): the AsyncAPI 3.0 JSON Schema, references,
// and the parser's spectral rules. Prints every diagnostic; exits 1 when any
// is an error or a warning (severity 0 or 1), 2 on bad usage.
//   node tools/asyncapi/validate.mjs schemas/asyncapi.yaml [more...]
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs FILE...");
  process.exit(2);
}
const parser = new Parser();
let failed = false;
for (const file of files) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"), {
    source: file,
  });
  const bad = diagnostics.filter((d) => d.severity <= 1);
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? d.path.join(".") : "(document)";
    console.log(`${file}: ${SEVERITY[d.severity] ?? d.severity} ${d.code} at ${where}: ${d.message}`);
  }
  if (document === undefined || bad.length > 0) {
    failed = true;
    console.log(`${file}: INVALID (${bad.length} errors or warnings)`);
  } else {
    const channels = document.channels().length;
    const operations = document.operations().length;
    const messages = document.allMessages().length;
    console.log(`${file}: valid AsyncAPI ${document.version()} (${channels} channels, ` +
      `${operations} operations, ${messages} messages)`);
  }
}
process.exit(failed ? 1 : 0);
