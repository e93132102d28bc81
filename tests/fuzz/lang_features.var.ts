/** Fuzzing seed: the TypeScript subset a spec may use (functions, loops, destructuring, spreads, templates). */
import { add, B, input, linear, model, param, range, scale, silu, tag, type Tensor } from "../../compiler/dsl/lang.ts";

const sizes = [4, 8, 4];
const depth = sizes.length - 1;
const config = { width: 4, gain: 0.5, name: "fuzz_lang" };
const { width, gain } = config;
const [first, ...rest] = sizes;

function dense(x: Tensor, p: string, cin: number, cout: number): Tensor {
  return linear(x, param(`${p}.weight`, [cout, cin]), param(`${p}.bias`, [cout]));
}

const act = (x: Tensor): Tensor => silu(x);
const twice = function (x: Tensor): Tensor {
  return add(x, x);
};

function stack(x: Tensor): Tensor {
  let h = x;
  for (let i = 0; i < depth; i++) {
    h = act(dense(h, `layers.${i}`, sizes[i], sizes[i + 1]));
    if (i % 2 === 1) h = twice(h);
    else h = scale(h, gain);
  }
  for (const j of range(2)) h = tag(h, `stack.out${j}`);
  return h;
}

const x = input("x", [B, first]);
const total = rest.reduce((a, b) => a + b, 0);
function names(n: number): string[] {
  const out = range(n).map((i) => `l${i}`);
  out.push("extra");
  return out;
}
const labels = names(3);
const flags = { many: labels.length > 3 && total === 12, none: !labels.includes("x"), pick: labels.at(-1) ?? "" };
const y = stack(x);

export default model({
  name: config.name,
  outputs: { y, z: scale(y, Math.sqrt(width) / Math.max(1, Math.min(2, 3)) ** 2) },
  meta: { ...flags, labels, total, tail: labels.slice(1, 3), ternary: total > 10 ? "big" : "small" },
});
