/** Fuzzing seed: one small model that uses every tensor op of the DSL once. */
import {
  add,
  attention,
  B,
  blockCausal,
  clamp,
  clampMax,
  concat,
  conv2d,
  exp,
  gather,
  geluTanh,
  groupNorm,
  input,
  interpolate,
  l2Normalize,
  layerNorm,
  levelIds,
  linear,
  model,
  mul,
  noMask,
  param,
  permute,
  reshape,
  scale,
  scaleWindow,
  shift,
  silu,
  slice,
  sub,
  tag,
  type Tensor,
  upsampleNearest,
} from "../../compiler/dsl/lang.ts";

const schedule = [1, 2];
const L = 5;
const idx = input("idx", [B, L], "i32");
const emb = gather(param("emb.weight", [4, 8]), idx);
const lvl = gather(param("lvl.weight", [2, 8]), levelIds(schedule));

function heads(t: Tensor): Tensor {
  return permute(reshape(t, [B, L, 2, 4]), [0, 2, 1, 3]);
}

const h = layerNorm(add(emb, lvl), 1e-6);
const q = l2Normalize(heads(linear(h, param("q.weight", [8, 8]), param("q.bias", [8]))), 1e-12);
const k = heads(linear(h, param("k.weight", [8, 8])));
const a = attention(q, k, heads(h), { scale: 0.5, mask: blockCausal(schedule) });
const w = attention(q, k, k, { scale: -0, mask: scaleWindow(schedule, 1) });
const n = attention(q, k, k, { scale: 1e308, mask: noMask() });
const merged = reshape(permute(add(add(a, w), n), [0, 2, 1, 3]), [B, L, 8]);
const mixed = sub(mul(silu(merged), geluTanh(l2Normalize(merged, 1e-12))), exp(clampMax(merged, 4)));
const out = tag(clamp(shift(scale(mixed, 2), -1), -3, 3), "out.logits");

const img = input("img", [B, 4, 2, 2]);
const conv = conv2d(img, param("conv.weight", [4, 4, 3, 3], "vae"), param("conv.bias", [4], "vae"), 1);
const norm = groupNorm(conv, param("gn.weight", [4], "vae"), param("gn.bias", [4], "vae"), 2, 1e-6);
const up = upsampleNearest(norm, 2);
const both = concat([interpolate(up, 3, "bicubic"), interpolate(up, 3, "area")], 1);

export default model({
  name: "fuzz_ops",
  entries: {
    forward: { logits: out, first: slice(out, 1, 0, 1) },
    decode: { img: both },
  },
  meta: { schedule, note: "ops", nested: { ok: true, list: [1, "two", false] } },
  optionalWeights: ["unused.*"],
});
