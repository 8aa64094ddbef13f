// Validate compose files against docs/converge.schema.json with ajv (draft 2020-12, strict),
// the JavaScript validator editors and CI tools use: it compiles every regular expression as
// ECMA-262 (with the u flag), so a Python-only pattern fails here.
//
// Usage: node scripts/schema-check/check.mjs SCHEMA FILE...   (exit 1 on any problem)
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import { parse } from "yaml";

// compose's merge tags: an editor sees the tagged value itself, a scalar with the type YAML
// gives it untagged (`!reset null` is null, `!override 3` is 3).
const untagged = (text) => {
  const value = parse(text);
  return value !== null && typeof value === "object" ? text : value;
};
const tags = ["!reset", "!override"].flatMap((tag) =>
  ["map", "seq", "scalar"].map((kind) => ({
    tag,
    collection: kind === "scalar" ? undefined : kind,
    resolve: kind === "scalar" ? untagged : (value) => value,
  })),
);

const [schemaPath, ...files] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, "utf8")));
let failed = 0;
for (const file of files) {
  const document = parse(readFileSync(file, "utf8"), { customTags: tags, merge: true });
  if (document === null || document === undefined) {
    // Comments only (a plan fixture's empty override): nothing to check, as in an editor.
    console.log(`${file}: empty`);
  } else if (validate(document)) {
    console.log(`${file}: valid`);
  } else {
    failed += 1;
    for (const error of validate.errors) {
      console.log(`${file}: ${error.instancePath || "/"} ${error.message}`);
    }
  }
}
process.exit(failed ? 1 : 0);
