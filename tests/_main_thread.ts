/**
 * @file Runs `Deno.test` modules on this process's main thread: `deno run -A tests/_main_thread.ts MODULE…`
 * (also `deno task test:main-thread MODULE…`). It is how the test modules that use WebGPU in-process run
 * (`tests/main_thread_test.ts` says why): tests register as under `deno test` (a name and a function, or a
 * definition with `ignore`), run in registration order with their steps, one line each; the exit code is 1
 * when any failed. `deno test`'s sanitizers, filters and `only` are not emulated (`only` is refused).
 */
import { relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

type Fn = (t: Deno.TestContext) => void | Promise<void>;
interface Registered {
  name: string;
  fn: Fn;
  ignore: boolean;
}

/** The registrations of `Deno.test(name, fn)`, `Deno.test(name, options, fn)` and `Deno.test({ name, fn, … })`. */
function definition(a: unknown, b?: unknown, c?: unknown): Registered {
  const def =
    (typeof a === "string"
      ? { name: a, ...(typeof b === "function" ? { fn: b } : { ...(b as object), fn: c }) }
      : typeof a === "function"
      ? { name: a.name, fn: a }
      : a) as { name?: string; fn?: Fn; ignore?: boolean; only?: boolean };
  if (typeof def.name !== "string" || def.name === "" || typeof def.fn !== "function") {
    throw new TypeError("Deno.test needs a name and a function");
  }
  if (def.only) throw new TypeError(`Deno.test "${def.name}": only is not supported on the main-thread runner`);
  return { name: def.name, fn: def.fn, ignore: def.ignore === true };
}

const ms = (t0: number) => `(${Math.round(performance.now() - t0)}ms)`;

/** Runs one test or step with a context whose `step` runs nested steps the same way; true when it passed. */
async function run(name: string, fn: Fn, depth: number, origin: string): Promise<boolean> {
  const pad = "  ".repeat(depth);
  console.log(`${pad}${name} ...`);
  const t0 = performance.now();
  let stepsOk = true;
  const context = {
    name,
    origin,
    parent: undefined,
    step(a: unknown, b?: unknown, c?: unknown): Promise<boolean> {
      const s = definition(a, b, c);
      if (s.ignore) {
        console.log(`${pad}  ${s.name} ... ignored`);
        return Promise.resolve(false);
      }
      return run(s.name, s.fn, depth + 1, origin).then((ok) => (stepsOk &&= ok, ok));
    },
  } as unknown as Deno.TestContext;
  try {
    await fn(context);
    if (!stepsOk) throw new Error("a step failed");
    console.log(`${pad}${name} ... ok ${ms(t0)}`);
    return true;
  } catch (e) {
    console.log(`${pad}${name} ... FAILED ${ms(t0)}\n${(e as Error)?.stack ?? String(e)}`);
    return false;
  }
}

const modules = Deno.args;
if (modules.length === 0) {
  console.error("usage: deno run -A tests/_main_thread.ts MODULE… (test modules to run on the main thread)");
  Deno.exit(1);
}
let passed = 0, failed = 0, ignored = 0;
const t0 = performance.now();
for (const path of modules) {
  const registered: Registered[] = [];
  Object.assign(Deno, { test: (a: unknown, b?: unknown, c?: unknown) => void registered.push(definition(a, b, c)) });
  const url = pathToFileURL(resolve(path)).href;
  await import(url);
  console.log(`running ${registered.length} tests from ./${relative(Deno.cwd(), resolve(path))} (main thread)`);
  for (const t of registered) {
    if (t.ignore) console.log(`${t.name} ... ignored`), ignored++;
    else if (await run(t.name, t.fn, 0, url)) passed++;
    else failed++;
  }
}
console.log(`\n${failed ? "FAILED" : "ok"} | ${passed} passed | ${failed} failed | ${ignored} ignored ${ms(t0)}`);
Deno.exit(failed ? 1 : 0);
