// Rewrites the JSON Schema blocks of docs/FLEET.md from lib/plant/schemas.ts (PLANT_SCHEMAS), after
// `npm run build`. Each block sits between `<!-- schema:KIND -->` and `<!-- /schema:KIND -->`;
// test/docs/fleet-doc.test.ts fails when a block and the schema differ.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const docPath = path.join(root, 'docs', 'FLEET.md');
const { PLANT_SCHEMAS } = require(path.join(root, 'dist', 'lib', 'plant', 'schemas.js'));

function schemaBlock(kind) {
  return `<!-- schema:${kind} -->\n\`\`\`json\n${JSON.stringify(PLANT_SCHEMAS[kind], null, 2)}\n\`\`\`\n<!-- /schema:${kind} -->`;
}

let doc = fs.readFileSync(docPath, 'utf8');
const missing = [];
for (const kind of Object.keys(PLANT_SCHEMAS)) {
  const block = new RegExp(`<!-- schema:${kind} -->[\\s\\S]*?<!-- /schema:${kind} -->`);
  if (block.test(doc)) doc = doc.replace(block, () => schemaBlock(kind));
  else missing.push(kind);
}
fs.writeFileSync(docPath, doc);
if (missing.length > 0) {
  console.error(`docs/FLEET.md has no block for: ${missing.join(', ')} (add <!-- schema:KIND --><!-- /schema:KIND --> where it belongs)`);
  process.exitCode = 1;
}
