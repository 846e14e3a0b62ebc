// The metadata editor's merge patch (console/metadata.js) in Node, without a browser: the patch
// computed from the metadata shown and the edited one, applied as the service applies it (RFC
// 7396), gives exactly the edited metadata. Run by tools/browser/run.sh with console.test.mjs.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { applyMergePatch, mergePatch, nullsSet, sameJson } from "../../console/metadata.js";

describe("the metadata editor's merge patch", () => {
  test("removed keys are null, changed and new keys their values, unchanged keys absent", () => {
    const from = { agent: "a-1", disposition: "open", tmp: "x", n: 1 };
    const to = { agent: "a-1", disposition: "sale", n: 1, summaryId: "sum-9" };
    assert.deepEqual(mergePatch(from, to), { tmp: null, disposition: "sale", summaryId: "sum-9" });
    assert.deepEqual(mergePatch(from, { ...from }), {});
  });

  test("objects are patched key by key, so a key removed inside one is removed", () => {
    const from = { campaign: { id: 7, name: "spring", tags: ["a"] }, keep: true };
    const to = { campaign: { id: 8, tags: ["a"] }, keep: true };
    const patch = mergePatch(from, to);
    assert.deepEqual(patch, { campaign: { name: null, id: 8 } });
    assert.deepEqual(applyMergePatch(from, patch), to);
  });

  test("a value that changes type, and arrays, are replaced whole", () => {
    const from = { a: { x: 1 }, b: [1, 2, 3], c: "s", d: [{ k: 1 }] };
    const to = { a: "now a string", b: [1, 2], c: { now: "an object" }, d: [{ k: 2 }] };
    const patch = mergePatch(from, to);
    assert.deepEqual(patch, to);
    assert.deepEqual(applyMergePatch(from, patch), to);
  });

  test("key order does not count as a change", () => {
    assert.ok(sameJson({ a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 }));
    assert.deepEqual(mergePatch({ a: 1, b: 2 }, { b: 2, a: 1 }), {});
    assert.ok(!sameJson([1, 2], [2, 1]));
    assert.ok(!sameJson({ a: 1 }, { a: 1, b: undefined, c: 2 }));
  });

  test("a null set as a value is found (a merge patch cannot say it); a null kept is not", () => {
    assert.deepEqual(nullsSet({ a: 1 }, { a: null }), ["a"]);
    assert.deepEqual(nullsSet({}, { fresh: { inner: null } }), ["fresh.inner"]);
    assert.deepEqual(nullsSet({ was: null, o: { n: null } }, { was: null, o: { n: null, m: 1 } }), []);
    assert.deepEqual(nullsSet({}, { list: [null, 1] }), [], "a null in an array is a value");
  });

  test("a key named __proto__ is an ordinary key", () => {
    const from = JSON.parse('{"__proto__": {"x": 1}, "a": 1}');
    const to = JSON.parse('{"__proto__": {"x": 2}, "a": 1}');
    const patch = mergePatch(from, to);
    assert.equal(JSON.stringify(patch), '{"__proto__":{"x":2}}');
    assert.equal(JSON.stringify(applyMergePatch(from, patch)), JSON.stringify(to));
    assert.equal(Object.getPrototypeOf(patch), Object.prototype);
  });

  test("for many random edits, applying the patch gives the edit", () => {
    let seed = 7;
    const random = (n) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const value = (depth) => {
      switch (random(depth > 2 ? 4 : 6)) {
        case 0: return random(100);
        case 1: return `s${random(5)}`;
        case 2: return random(2) === 0;
        case 3: return [random(3), `t${random(3)}`];
        default: return object(depth + 1);
      }
    };
    const object = (depth) => {
      const o = {};
      for (let i = random(5); i > 0; i--) o[`k${random(6)}`] = value(depth);
      return o;
    };
    const edit = (o, depth) => {
      const e = structuredClone(o);
      for (const key of Object.keys(e)) {
        const r = random(5);
        if (r === 0) delete e[key];
        else if (r === 1) e[key] = value(depth);
        else if (r === 2 && typeof e[key] === "object" && !Array.isArray(e[key])) e[key] = edit(e[key], depth + 1);
      }
      if (random(2)) e[`n${random(4)}`] = value(depth);
      return e;
    };
    for (let i = 0; i < 2000; i++) {
      const from = object(0);
      const to = edit(from, 0);
      assert.deepEqual(applyMergePatch(from, mergePatch(from, to)), to, JSON.stringify({ from, to }));
    }
  });
});
