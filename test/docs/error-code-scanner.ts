/**
 * Finds the error codes the TypeScript sources can produce, by reading their syntax trees: string literals
 * given to `new OtaError(...)`, literals that reach it through a parameter (`toOtaError(err, 'X')`, a helper
 * taking `nakCode`), parameter defaults, and `code: 'X'` in object literals (error objects built by hand).
 * Codes computed at run time (DEVICE_<NAME>, lib/image's problem list) come from their modules instead.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

export interface CodeSite {
  code: string;
  /** file:line, for the failure message. */
  where: string;
}

const CODE_PATTERN = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;

/** A function whose parameter at `index` ends up as an OtaError code. */
interface CodeParameter {
  functionName: string;
  index: number;
}

interface Source {
  file: string;
  tree: ts.SourceFile;
}

function literalCodes(expr: ts.Expression | undefined): string[] {
  if (!expr) return [];
  if (ts.isParenthesizedExpression(expr)) return literalCodes(expr.expression);
  if (ts.isConditionalExpression(expr)) return [...literalCodes(expr.whenTrue), ...literalCodes(expr.whenFalse)];
  if ((ts.isStringLiteral(expr) || ts.isNoSubstitutionTemplateLiteral(expr)) && CODE_PATTERN.test(expr.text)) return [expr.text];
  return [];
}

function functionName(fn: ts.SignatureDeclaration): string | undefined {
  if ((ts.isFunctionDeclaration(fn) || ts.isMethodDeclaration(fn)) && fn.name) return fn.name.getText();
  const parent = fn.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))) return parent.name.getText();
  return undefined;
}

/** The function declaring `name` as a parameter, looking outwards from `node`. */
function declaringFunction(node: ts.Node, name: string): { fn: ts.SignatureDeclaration; index: number } | undefined {
  for (let n: ts.Node | undefined = node.parent; n; n = n.parent) {
    if (ts.isFunctionLike(n)) {
      const index = n.parameters.findIndex((p) => ts.isIdentifier(p.name) && p.name.text === name);
      if (index >= 0) return { fn: n, index };
    }
  }
  return undefined;
}

function site(src: Source, node: ts.Node, code: string): CodeSite {
  const { line } = src.tree.getLineAndCharacterOfPosition(node.getStart(src.tree));
  return { code, where: `${src.file}:${line + 1}` };
}

function calleeName(call: ts.CallExpression): string | undefined {
  const callee = call.expression;
  if (ts.isIdentifier(callee)) return callee.text;
  if (ts.isPropertyAccessExpression(callee)) return callee.name.text;
  return undefined;
}

function walk(node: ts.Node, visit: (n: ts.Node) => void): void {
  visit(node);
  ts.forEachChild(node, (child) => walk(child, visit));
}

/** Codes found directly, and the parameters through which codes flow into OtaError. */
function directCodes(src: Source, sites: CodeSite[], params: CodeParameter[]): void {
  walk(src.tree, (node) => {
    if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'OtaError') {
      const first = node.arguments?.[0];
      for (const code of literalCodes(first)) sites.push(site(src, node, code));
      if (first && ts.isIdentifier(first)) {
        const decl = declaringFunction(node, first.text);
        const name = decl && functionName(decl.fn);
        if (decl && name) {
          params.push({ functionName: name, index: decl.index });
          for (const code of literalCodes(decl.fn.parameters[decl.index].initializer)) sites.push(site(src, decl.fn, code));
        }
      }
    }
    if (ts.isPropertyAssignment(node) && node.name.getText(src.tree) === 'code') {
      for (const code of literalCodes(node.initializer)) sites.push(site(src, node, code));
    }
  });
}

function codesThroughParameters(src: Source, params: CodeParameter[], sites: CodeSite[]): void {
  walk(src.tree, (node) => {
    if (!ts.isCallExpression(node)) return;
    const name = calleeName(node);
    for (const p of params) {
      if (p.functionName !== name) continue;
      for (const code of literalCodes(node.arguments[p.index])) sites.push(site(src, node, code));
    }
  });
}

/** Scans in-memory sources (file name → text). */
export function scanSources(files: ReadonlyMap<string, string>): CodeSite[] {
  const sources: Source[] = [...files].map(([file, text]) => ({ file, tree: ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true) }));
  const sites: CodeSite[] = [];
  const params: CodeParameter[] = [];
  for (const src of sources) directCodes(src, sites, params);
  for (const src of sources) codesThroughParameters(src, params, sites);
  return sites;
}

function tsFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(full);
    return entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Scans every TypeScript file under the given directories (paths in the result are relative to root). */
export function scanDirectories(root: string, dirs: readonly string[]): CodeSite[] {
  const files = new Map<string, string>();
  for (const dir of dirs) for (const file of tsFiles(path.join(root, dir))) files.set(path.relative(root, file), fs.readFileSync(file, 'utf8'));
  return scanSources(files);
}
