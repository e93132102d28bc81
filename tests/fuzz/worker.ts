/** @file Worker thread of the fuzz driver: builds, runs and judges the cases it is sent, one at a time. */
import { LIMITS } from "../../compiler/dsl/interp.ts";
import { FuzzContext } from "../../tools/fuzz_lib.ts";

interface Scope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

const scope = globalThis as unknown as Scope;
let ctx: FuzzContext | undefined;
let outDir = "out/fuzz";

scope.onmessage = async (e: MessageEvent) => {
  const msg = e.data;
  if (msg.type === "init") {
    Object.assign(LIMITS, msg.limits);
    outDir = msg.outDir;
    ctx = new FuzzContext(msg.seed, msg.tmpDir);
    scope.postMessage({ type: "ready" });
  } else if (msg.type === "run") {
    scope.postMessage(await ctx!.run(msg.kind, msg.index, msg.timeoutMs, outDir));
  }
};
