/** Independent float64 reference of VAR's VQ-VAE token-to-image path (test oracle; plain loops, no compiler code). */

/** Read a float32 tensor by state-dict name; must throw if missing. */
export type Weights = (name: string) => Float32Array;

/**
 * VQ-VAE hyperparameters needed by the reference.
 *
 * `ch` is the base channel count, `chMult` the per-level multipliers (level 0 = full resolution),
 * `numResBlocks` the official `num_res_blocks` (each decoder level has numResBlocks + 1 ResnetBlocks),
 * `cvae` the codebook / latent channel count, `vocab` the codebook size, `schedule` the patch numbers pn_s
 * (the last one is the f_hat side n) and `phiIndex[s]` the Phi conv used at scale s.
 */
export interface VaeConfig {
  ch: number;
  chMult: readonly number[];
  numResBlocks: number;
  cvae: number;
  vocab: number;
  schedule: readonly number[];
  phiIndex: readonly number[];
}

/** Residual ratio of Phi: Phi(h) = (1 - r) h + r conv3x3(h). */
const QUANT_RESI = 0.5;
/** Bicubic convolution constant used by PyTorch. */
const CUBIC_A = -0.75;
/** GroupNorm group count and epsilon of the official `Normalize`. */
const GN_GROUPS = 32;
const GN_EPS = 1e-6;

/** Read a weight and check its element count. */
function get(w: Weights, name: string, size: number): Float32Array {
  const t = w(name);
  if (t.length !== size) {
    throw new Error(`weight ${name}: expected ${size} elements, got ${t.length}`);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Elementary ops on one image: tensors are [C, H, W] Float64Arrays (row-major).
// ---------------------------------------------------------------------------------------------

/** 3x3 conv, stride 1, zero padding 1, with bias: x [cin, h, w], weight [cout, cin, 3, 3] -> [cout, h, w]. */
function conv3x3(
  x: Float64Array,
  cin: number,
  cout: number,
  h: number,
  w: number,
  weight: Float32Array,
  bias: Float32Array,
): Float64Array {
  if (weight.length !== cout * cin * 9 || bias.length !== cout) {
    throw new Error(`conv3x3: weight/bias do not match ${cout}x${cin}x3x3`);
  }
  // zero-padded copy: [cin, h + 2, w + 2], so the inner loop needs no bounds checks
  const pw = w + 2;
  const plane = (h + 2) * pw;
  const pad = new Float64Array(cin * plane);
  for (let c = 0; c < cin; c++) {
    for (let y = 0; y < h; y++) {
      const src = (c * h + y) * w;
      const dst = c * plane + (y + 1) * pw + 1;
      for (let xx = 0; xx < w; xx++) pad[dst + xx] = x[src + xx];
    }
  }
  const out = new Float64Array(cout * h * w);
  for (let co = 0; co < cout; co++) {
    const b = bias[co];
    for (let y = 0; y < h; y++) {
      const o = (co * h + y) * w;
      for (let xx = 0; xx < w; xx++) out[o + xx] = b;
      for (let ci = 0; ci < cin; ci++) {
        const k = (co * cin + ci) * 9;
        const w00 = weight[k], w01 = weight[k + 1], w02 = weight[k + 2];
        const w10 = weight[k + 3], w11 = weight[k + 4], w12 = weight[k + 5];
        const w20 = weight[k + 6], w21 = weight[k + 7], w22 = weight[k + 8];
        const r0 = ci * plane + y * pw; // padded row y holds input row y - 1
        const r1 = r0 + pw;
        const r2 = r1 + pw;
        for (let xx = 0; xx < w; xx++) {
          out[o + xx] += w00 * pad[r0 + xx] + w01 * pad[r0 + xx + 1] + w02 * pad[r0 + xx + 2] +
            w10 * pad[r1 + xx] + w11 * pad[r1 + xx + 1] + w12 * pad[r1 + xx + 2] +
            w20 * pad[r2 + xx] + w21 * pad[r2 + xx + 1] + w22 * pad[r2 + xx + 2];
        }
      }
    }
  }
  return out;
}

/** 1x1 conv with bias: x [cin, n] (n = h*w), weight [cout, cin, 1, 1] -> [cout, n]. */
function conv1x1(
  x: Float64Array,
  cin: number,
  cout: number,
  n: number,
  weight: Float32Array,
  bias: Float32Array,
): Float64Array {
  if (weight.length !== cout * cin || bias.length !== cout) {
    throw new Error(`conv1x1: weight/bias do not match ${cout}x${cin}x1x1`);
  }
  const out = new Float64Array(cout * n);
  for (let co = 0; co < cout; co++) {
    const o = co * n;
    const b = bias[co];
    for (let p = 0; p < n; p++) out[o + p] = b;
    for (let ci = 0; ci < cin; ci++) {
      const wv = weight[co * cin + ci];
      const i = ci * n;
      for (let p = 0; p < n; p++) out[o + p] += wv * x[i + p];
    }
  }
  return out;
}

/** GroupNorm (32 groups, eps 1e-6, biased variance over channels-in-group x H x W) with affine weight/bias. */
function groupNorm(x: Float64Array, c: number, n: number, gamma: Float32Array, beta: Float32Array): Float64Array {
  if (c % GN_GROUPS !== 0) throw new Error(`GroupNorm: ${c} channels not divisible by ${GN_GROUPS}`);
  if (gamma.length !== c || beta.length !== c) throw new Error(`GroupNorm: affine params do not match ${c}`);
  const cpg = c / GN_GROUPS;
  const size = cpg * n;
  const out = new Float64Array(c * n);
  for (let g = 0; g < GN_GROUPS; g++) {
    const start = g * size;
    let mean = 0;
    for (let i = 0; i < size; i++) mean += x[start + i];
    mean /= size;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const d = x[start + i] - mean;
      v += d * d;
    }
    const inv = 1 / Math.sqrt(v / size + GN_EPS);
    for (let cc = g * cpg; cc < (g + 1) * cpg; cc++) {
      const a = gamma[cc] * inv;
      const b = beta[cc] - mean * a;
      for (let p = 0; p < n; p++) out[cc * n + p] = x[cc * n + p] * a + b;
    }
  }
  return out;
}

/** In-place SiLU: x * sigmoid(x). */
function siluInPlace(x: Float64Array): Float64Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i] / (1 + Math.exp(-x[i]));
  return x;
}

/** Nearest-neighbour x2 upsampling: [c, h, w] -> [c, 2h, 2w]. */
function upsampleNearest2x(x: Float64Array, c: number, h: number, w: number): Float64Array {
  const h2 = 2 * h, w2 = 2 * w;
  const out = new Float64Array(c * h2 * w2);
  for (let cc = 0; cc < c; cc++) {
    for (let y = 0; y < h2; y++) {
      const src = (cc * h + (y >> 1)) * w;
      const dst = (cc * h2 + y) * w2;
      for (let xx = 0; xx < w2; xx++) out[dst + xx] = x[src + (xx >> 1)];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoder building blocks (official models/basic_vae.py)
// ---------------------------------------------------------------------------------------------

/** ResnetBlock: h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h))); return shortcut(x) + h. */
function resnetBlock(
  wt: Weights,
  prefix: string,
  x: Float64Array,
  cin: number,
  cout: number,
  h: number,
  w: number,
): Float64Array {
  const n = h * w;
  let t = siluInPlace(
    groupNorm(x, cin, n, get(wt, `${prefix}.norm1.weight`, cin), get(wt, `${prefix}.norm1.bias`, cin)),
  );
  t = conv3x3(
    t,
    cin,
    cout,
    h,
    w,
    get(wt, `${prefix}.conv1.weight`, cout * cin * 9),
    get(wt, `${prefix}.conv1.bias`, cout),
  );
  t = siluInPlace(
    groupNorm(t, cout, n, get(wt, `${prefix}.norm2.weight`, cout), get(wt, `${prefix}.norm2.bias`, cout)),
  );
  t = conv3x3(
    t,
    cout,
    cout,
    h,
    w,
    get(wt, `${prefix}.conv2.weight`, cout * cout * 9),
    get(wt, `${prefix}.conv2.bias`, cout),
  );
  const short = cin === cout ? x : conv1x1(
    x,
    cin,
    cout,
    n,
    get(wt, `${prefix}.nin_shortcut.weight`, cout * cin),
    get(wt, `${prefix}.nin_shortcut.bias`, cout),
  );
  for (let i = 0; i < t.length; i++) t[i] += short[i];
  return t;
}

/** AttnBlock(C): single-head self-attention over the h*w positions with softmax scale C^-0.5; out = x + proj_out(h). */
function attnBlock(wt: Weights, prefix: string, x: Float64Array, c: number, n: number): Float64Array {
  const xn = groupNorm(x, c, n, get(wt, `${prefix}.norm.weight`, c), get(wt, `${prefix}.norm.bias`, c));
  const qkv = conv1x1(
    xn,
    c,
    3 * c,
    n,
    get(wt, `${prefix}.qkv.weight`, 3 * c * c),
    get(wt, `${prefix}.qkv.bias`, 3 * c),
  );
  // q, k, v: [c, n] slices of qkv at channel offsets 0, c, 2c; transpose to [n, c] for contiguous dot products
  const qT = new Float64Array(n * c), kT = new Float64Array(n * c), vT = new Float64Array(n * c);
  for (let cc = 0; cc < c; cc++) {
    for (let p = 0; p < n; p++) {
      qT[p * c + cc] = qkv[cc * n + p];
      kT[p * c + cc] = qkv[(c + cc) * n + p];
      vT[p * c + cc] = qkv[(2 * c + cc) * n + p];
    }
  }
  const scale = 1 / Math.sqrt(c);
  const att = new Float64Array(c * n); // [c, n]
  const s = new Float64Array(n);
  const acc = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < n; j++) {
      let d = 0;
      for (let cc = 0; cc < c; cc++) d += qT[i * c + cc] * kT[j * c + cc];
      s[j] = d * scale;
      if (s[j] > mx) mx = s[j];
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      s[j] = Math.exp(s[j] - mx);
      sum += s[j];
    }
    acc.fill(0);
    for (let j = 0; j < n; j++) {
      const pj = s[j] / sum;
      for (let cc = 0; cc < c; cc++) acc[cc] += pj * vT[j * c + cc];
    }
    for (let cc = 0; cc < c; cc++) att[cc * n + i] = acc[cc];
  }
  const proj = conv1x1(
    att,
    c,
    c,
    n,
    get(wt, `${prefix}.proj_out.weight`, c * c),
    get(wt, `${prefix}.proj_out.bias`, c),
  );
  for (let i = 0; i < proj.length; i++) proj[i] += x[i];
  return proj;
}

// ---------------------------------------------------------------------------------------------
// Quantizer: embed_to_fhat
// ---------------------------------------------------------------------------------------------

/** PyTorch cubic convolution kernel (a = -0.75) at distance x. */
function cubic(x: number): number {
  const a = CUBIC_A;
  const ax = Math.abs(x);
  if (ax <= 1) return (a + 2) * ax * ax * ax - (a + 3) * ax * ax + 1;
  if (ax < 2) return a * ax * ax * ax - 5 * a * ax * ax + 8 * a * ax - 4 * a;
  return 0;
}

/** Bicubic (align_corners=False, taps clamped to the border) 1-D interpolation matrix [nOut, nIn], row-major. */
function bicubicWeights(nIn: number, nOut: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    const src = (o + 0.5) * (nIn / nOut) - 0.5;
    const i0 = Math.floor(src);
    const t = src - i0;
    const taps = [cubic(t + 1), cubic(t), cubic(1 - t), cubic(2 - t)];
    for (let j = 0; j < 4; j++) {
      const i = Math.min(Math.max(i0 - 1 + j, 0), nIn - 1);
      m[o * nIn + i] += taps[j];
    }
  }
  return m;
}

/** Bicubic resize of [c, nIn, nIn] to [c, nOut, nOut]: out[y][x] = sum_{i,j} M[y][i] M[x][j] in[i][j]. */
function bicubicResize(x: Float64Array, c: number, nIn: number, nOut: number): Float64Array {
  const m = bicubicWeights(nIn, nOut);
  const out = new Float64Array(c * nOut * nOut);
  for (let cc = 0; cc < c; cc++) {
    for (let y = 0; y < nOut; y++) {
      for (let xx = 0; xx < nOut; xx++) {
        let s = 0;
        for (let i = 0; i < nIn; i++) {
          const wy = m[y * nIn + i];
          if (wy === 0) continue;
          for (let j = 0; j < nIn; j++) s += wy * m[xx * nIn + j] * x[(cc * nIn + i) * nIn + j];
        }
        out[(cc * nOut + y) * nOut + xx] = s;
      }
    }
  }
  return out;
}

/** Official embed_to_fhat(all_to_max_scale=True, last_one=True) for a token pyramid idx [B, L]: f_hat [B, Cvae, n, n] = Σ_s Phi_{k(s)}(bicubic(codebook[idx_s] -> n)), last scale without upsampling. */
export function fhatFromTokens64(w: Weights, cfg: VaeConfig, idx: Int32Array, batch: number): Float64Array {
  const sched = cfg.schedule;
  const nScales = sched.length;
  if (cfg.phiIndex.length !== nScales) throw new Error("phiIndex must have one entry per scale");
  const cv = cfg.cvae;
  const n = sched[nScales - 1];
  let seqLen = 0;
  for (const pn of sched) seqLen += pn * pn;
  if (idx.length !== batch * seqLen) throw new Error(`idx: expected ${batch * seqLen} entries, got ${idx.length}`);
  const codebook = get(w, "quantize.embedding.weight", cfg.vocab * cv); // [V, Cvae]
  const plane = cv * n * n;
  const out = new Float64Array(batch * plane);
  for (let b = 0; b < batch; b++) {
    let begin = 0;
    for (let s = 0; s < nScales; s++) {
      const pn = sched[s];
      // emb: [Cvae, pn, pn], codebook rows of this scale's tokens (row-major over the pn x pn map)
      const emb = new Float64Array(cv * pn * pn);
      for (let i = 0; i < pn * pn; i++) {
        const tok = idx[b * seqLen + begin + i];
        if (!(tok >= 0 && tok < cfg.vocab)) throw new Error(`token ${tok} out of range`);
        for (let c = 0; c < cv; c++) emb[c * pn * pn + i] = codebook[tok * cv + c];
      }
      begin += pn * pn;
      const h = s < nScales - 1 ? bicubicResize(emb, cv, pn, n) : emb;
      if (h.length !== plane) throw new Error(`scale ${s}: last scale must equal the f_hat side ${n}`);
      const k = cfg.phiIndex[s];
      const conv = conv3x3(
        h,
        cv,
        cv,
        n,
        n,
        get(w, `quantize.quant_resi.qresi_ls.${k}.weight`, cv * cv * 9),
        get(w, `quantize.quant_resi.qresi_ls.${k}.bias`, cv),
      );
      for (let i = 0; i < plane; i++) out[b * plane + i] += (1 - QUANT_RESI) * h[i] + QUANT_RESI * conv[i];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoder: fhat_to_img
// ---------------------------------------------------------------------------------------------

/** Decoder of one image: z [Cvae, n, n] -> image [3, n·2^(levels-1), ...] (not clamped). */
function decodeOne(w: Weights, cfg: VaeConfig, z: Float64Array, n: number): Float64Array {
  const levels = cfg.chMult.length;
  const cv = cfg.cvae;
  let side = n;
  let c = cfg.ch * cfg.chMult[levels - 1];
  // post_quant_conv, conv_in
  let x = conv3x3(z, cv, cv, n, n, get(w, "post_quant_conv.weight", cv * cv * 9), get(w, "post_quant_conv.bias", cv));
  x = conv3x3(x, cv, c, n, n, get(w, "decoder.conv_in.weight", c * cv * 9), get(w, "decoder.conv_in.bias", c));
  // mid
  x = resnetBlock(w, "decoder.mid.block_1", x, c, c, side, side);
  x = attnBlock(w, "decoder.mid.attn_1", x, c, side * side);
  x = resnetBlock(w, "decoder.mid.block_2", x, c, c, side, side);
  // up levels, lowest resolution first
  for (let i = levels - 1; i >= 0; i--) {
    const cout = cfg.ch * cfg.chMult[i];
    for (let j = 0; j <= cfg.numResBlocks; j++) {
      x = resnetBlock(w, `decoder.up.${i}.block.${j}`, x, c, cout, side, side);
      c = cout;
      if (i === levels - 1) x = attnBlock(w, `decoder.up.${i}.attn.${j}`, x, c, side * side);
    }
    if (i !== 0) {
      x = upsampleNearest2x(x, c, side, side);
      side *= 2;
      x = conv3x3(
        x,
        c,
        c,
        side,
        side,
        get(w, `decoder.up.${i}.upsample.conv.weight`, c * c * 9),
        get(w, `decoder.up.${i}.upsample.conv.bias`, c),
      );
    }
  }
  // norm_out -> SiLU -> conv_out
  x = siluInPlace(
    groupNorm(x, c, side * side, get(w, "decoder.norm_out.weight", c), get(w, "decoder.norm_out.bias", c)),
  );
  x = conv3x3(x, c, 3, side, side, get(w, "decoder.conv_out.weight", 3 * c * 9), get(w, "decoder.conv_out.bias", 3));
  return x;
}

/** Official VQVAE.fhat_to_img: decoder(post_quant_conv(f_hat)) clamped to [-1, 1]: [B, 3, 16n, 16n]. */
export function decode64(w: Weights, cfg: VaeConfig, fhat: Float64Array, batch: number): Float64Array {
  const cv = cfg.cvae;
  const n = cfg.schedule[cfg.schedule.length - 1];
  const plane = cv * n * n;
  if (fhat.length !== batch * plane) throw new Error(`fhat: expected ${batch * plane} entries, got ${fhat.length}`);
  const side = n * 2 ** (cfg.chMult.length - 1);
  const imgSize = 3 * side * side;
  const out = new Float64Array(batch * imgSize);
  for (let b = 0; b < batch; b++) {
    const img = decodeOne(w, cfg, fhat.slice(b * plane, (b + 1) * plane), n);
    for (let i = 0; i < imgSize; i++) out[b * imgSize + i] = Math.min(1, Math.max(-1, img[i]));
  }
  return out;
}
