// Node-RED loads a node's .html, locales/ and icons/ from beside its .js file: copy them next to the
// compiled output after tsc.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const nodesSrc = path.join(root, 'nodes');
const nodesOut = path.join(root, 'dist', 'nodes');

function copyTree(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst);
    else if (!entry.name.endsWith('.ts')) fs.copyFileSync(src, dst);
  }
}

if (fs.existsSync(nodesSrc)) {
  for (const entry of fs.readdirSync(nodesSrc, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const out = path.join(nodesOut, entry.name);
    copyTree(path.join(nodesSrc, entry.name), out);
    const icons = path.join(root, 'icons');
    if (fs.existsSync(icons)) copyTree(icons, path.join(out, 'icons'));
  }
}
