// node no-casts.mjs FILE.ts: fails, listing them, on the ways around the generated types in a
// TypeScript file: `any`, casts (`x as T`, `<T>x`; `as const` is fine), non-null assertions (`x!`)
// and @ts-ignore / @ts-expect-error / @ts-nocheck comments. Uses the pinned TypeScript's parser.
import { readFileSync } from "node:fs";
import ts from "typescript";

const file = process.argv[2];
const text = readFileSync(file, "utf8");
const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
const problems = [];

function report(node, what) {
    const { line, character } = source.getLineAndCharacterOfPosition(node.getStart(source));
    problems.push(`${file}:${line + 1}:${character + 1}: ${what}: ${node.getText(source).slice(0, 80)}`);
}

function visit(node) {
    if (node.kind === ts.SyntaxKind.AnyKeyword) report(node, "`any`");
    else if (ts.isAsExpression(node) && !(ts.isTypeReferenceNode(node.type) && node.type.getText(source) === "const"))
        report(node, "a cast");
    else if (ts.isTypeAssertionExpression(node)) report(node, "a cast");
    else if (ts.isNonNullExpression(node)) report(node, "a non-null assertion");
    ts.forEachChild(node, visit);
}
visit(source);

for (const range of [...text.matchAll(/\/\/\s*@ts-(ignore|expect-error|nocheck)|\/\*\s*@ts-(ignore|expect-error|nocheck)/g)]) {
    const { line } = source.getLineAndCharacterOfPosition(range.index);
    problems.push(`${file}:${line + 1}: a ${range[0].replace(/^\/[/*]\s*/, "")} comment`);
}

for (const problem of problems) console.error(problem);
process.exit(problems.length > 0 ? 1 : 0);
