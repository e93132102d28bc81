/** Independent float64 reference of VAR's teacher-forced forward (test oracle; plain loops, no compiler code). */

/** Read a float32 tensor by state-dict name; must throw if missing. */
export type Weights = (name: string) => Float32Array;

/**
 * Model hyperparameters needed by the reference.
 *
 * `width` is C, `heads` is H (head dim D = C / H), `classes` is the number of real classes (row `classes` of
 * `class_emb` is the unconditional one), `vocab` is the codebook size V, `cvae` the codebook channel count,
 * `schedule` the patch numbers pn_s (L = sum pn_s^2), `sharedAdaLN` selects the d36-style shared AdaLN,
 * `normEps` the LayerNorm eps and `phiIndex[s]` the Phi conv used at scale s.
 */
export interface VarConfig {
  depth: number;
  width: number;
  heads: number;
  mlpRatio: number;
  classes: number;
  vocab: number;
  cvae: number;
  schedule: readonly number[];
  sharedAdaLN: boolean;
  normEps: number;
  phiIndex: readonly number[];
}

/** Residual ratio of Phi: Phi(h) = (1 - r) h + r conv3x3(h). */
const QUANT_RESI = 0.5;
/** Bicubic convolution constant used by PyTorch. */
const CUBIC_A = -0.75;
/** Clamp of the per-head log temperature: ln 100. */
const MAX_SCALE_MUL = Math.log(100);
/** Epsilon of the q/k L2 normalisation (F.normalize). */
const L2_EPS = 1e-12;

/** Cumulative token offsets: begins[s] = sum_{s' < s} pn_{s'}^2; begins[S] = L. */
function scaleBegins(schedule: readonly number[]): number[] {
  const begins = [0];
  for (const pn of schedule) begins.push(begins[begins.length - 1] + pn * pn);
  return begins;
}

/** Read a weight and check its element count. */
function get(w: Weights, name: string, size: number): Float32Array {
  const t = w(name);
  if (t.length !== size) {
    throw new Error(
      `weight ${name}: expected ${size} elements, got ${t.length}`,
    );
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Quantizer side: idxBl_to_var_input
// ---------------------------------------------------------------------------------------------

/** PyTorch cubic convolution kernel (a = -0.75) at distance x >= 0. */
function cubic(x: number): number {
  const a = CUBIC_A;
  const ax = Math.abs(x);
  if (ax <= 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
  if (ax < 2) return ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a;
  return 0;
}

/** Bicubic (align_corners=False, clamped taps) 1-D interpolation matrix: [nOut, nIn], row-major. */
function bicubicMatrix(nIn: number, nOut: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  const scale = nIn / nOut;
  for (let o = 0; o < nOut; o++) {
    const src = (o + 0.5) * scale - 0.5; // not clamped for cubic
    const i0 = Math.floor(src);
    const t = src - i0;
    const ws = [cubic(t + 1), cubic(t), cubic(1 - t), cubic(2 - t)];
    for (let j = 0; j < 4; j++) {
      const idx = Math.min(Math.max(i0 - 1 + j, 0), nIn - 1);
      m[o * nIn + idx] += ws[j];
    }
  }
  return m;
}

/** Area (adaptive average pool) 1-D matrix: [nOut, nIn], row-major. */
function areaMatrix(nIn: number, nOut: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    const start = Math.floor((o * nIn) / nOut);
    const end = Math.ceil(((o + 1) * nIn) / nOut);
    for (let i = start; i < end; i++) m[o * nIn + i] = 1 / (end - start);
  }
  return m;
}

/** Separable 2-D resample: x [Cc, nIn, nIn], m [nOut, nIn] -> m x m^T per channel: [Cc, nOut, nOut]. */
function resample2d(
  x: Float64Array,
  cc: number,
  nIn: number,
  m: Float64Array,
  nOut: number,
): Float64Array {
  const tmp = new Float64Array(cc * nOut * nIn); // [Cc, nOut (rows), nIn (cols)]
  for (let c = 0; c < cc; c++) {
    for (let o = 0; o < nOut; o++) {
      for (let i = 0; i < nIn; i++) {
        const wgt = m[o * nIn + i];
        if (wgt === 0) continue;
        for (let j = 0; j < nIn; j++) {
          tmp[(c * nOut + o) * nIn + j] += wgt * x[(c * nIn + i) * nIn + j];
        }
      }
    }
  }
  const out = new Float64Array(cc * nOut * nOut); // [Cc, nOut, nOut]
  for (let c = 0; c < cc; c++) {
    for (let o = 0; o < nOut; o++) {
      for (let p = 0; p < nOut; p++) {
        let s = 0;
        for (let j = 0; j < nIn; j++) {
          s += m[p * nIn + j] * tmp[(c * nOut + o) * nIn + j];
        }
        out[(c * nOut + o) * nOut + p] = s;
      }
    }
  }
  return out;
}

/** 3x3 conv, stride 1, zero padding 1, with bias: x [Cc, n, n], weight [Cc, Cc, 3, 3] -> [Cc, n, n]. */
function conv3x3(
  x: Float64Array,
  cc: number,
  n: number,
  weight: Float32Array,
  bias: Float32Array,
): Float64Array {
  const out = new Float64Array(cc * n * n);
  for (let co = 0; co < cc; co++) {
    for (let y = 0; y < n; y++) {
      for (let xx = 0; xx < n; xx++) {
        let s = bias[co];
        for (let ci = 0; ci < cc; ci++) {
          for (let ky = 0; ky < 3; ky++) {
            const iy = y + ky - 1;
            if (iy < 0 || iy >= n) continue;
            for (let kx = 0; kx < 3; kx++) {
              const ix = xx + kx - 1;
              if (ix < 0 || ix >= n) continue;
              s += weight[((co * cc + ci) * 3 + ky) * 3 + kx] *
                x[(ci * n + iy) * n + ix];
            }
          }
        }
        out[(co * n + y) * n + xx] = s;
      }
    }
  }
  return out;
}

/** Official idxBl_to_var_input: idx [B, L] (scale-major, row-major within a scale) -> [B, L - 1, Cvae] (channels last). Uses quantize.embedding.weight, quantize.quant_resi.qresi_ls.{k}.weight/bias, bicubic a=-0.75 half-pixel with clamped taps, Phi(h)=0.5h+0.5conv3x3(h), area (adaptive avg pool) downsampling. */
export function teacherForcingInput64(
  vae: Weights,
  cfg: VarConfig,
  idx: Int32Array,
  batch: number,
): Float64Array {
  const sched = cfg.schedule;
  const nScales = sched.length;
  const cv = cfg.cvae;
  const hw = sched[nScales - 1];
  const begins = scaleBegins(sched);
  const seqLen = begins[nScales];
  if (idx.length !== batch * seqLen) {
    throw new Error(
      `idx: expected ${batch * seqLen} entries, got ${idx.length}`,
    );
  }
  const codebook = get(vae, "quantize.embedding.weight", cfg.vocab * cv); // [V, Cvae]
  const out = new Float64Array(batch * (seqLen - 1) * cv); // [B, L - 1, Cvae]
  for (let b = 0; b < batch; b++) {
    const fHat = new Float64Array(cv * hw * hw); // [Cvae, HW, HW]
    for (let s = 0; s < nScales - 1; s++) {
      const pn = sched[s];
      // z: [Cvae, pn, pn] = codebook rows of this scale's tokens
      const z = new Float64Array(cv * pn * pn);
      for (let i = 0; i < pn * pn; i++) {
        const tok = idx[b * seqLen + begins[s] + i];
        if (tok < 0 || tok >= cfg.vocab) {
          throw new Error(`token ${tok} out of range`);
        }
        for (let c = 0; c < cv; c++) {
          z[c * pn * pn + i] = codebook[tok * cv + c];
        }
      }
      // h: [Cvae, HW, HW] = bicubic upsample, then Phi_k(h) = (1 - r) h + r (conv3x3(h) + bias)
      const h = resample2d(z, cv, pn, bicubicMatrix(pn, hw), hw);
      const k = cfg.phiIndex[s];
      const conv = conv3x3(
        h,
        cv,
        hw,
        get(vae, `quantize.quant_resi.qresi_ls.${k}.weight`, cv * cv * 9),
        get(vae, `quantize.quant_resi.qresi_ls.${k}.bias`, cv),
      );
      for (let i = 0; i < fHat.length; i++) {
        fHat[i] += (1 - QUANT_RESI) * h[i] + QUANT_RESI * conv[i];
      }
      // next: [Cvae, pn', pn'] = area(f_hat -> pn'), written channels last at tokens of scale s + 1
      const pnNext = sched[s + 1];
      const next = resample2d(fHat, cv, hw, areaMatrix(hw, pnNext), pnNext);
      for (let i = 0; i < pnNext * pnNext; i++) {
        const row = b * (seqLen - 1) + begins[s + 1] - 1 + i;
        for (let c = 0; c < cv; c++) {
          out[row * cv + c] = next[c * pnNext * pnNext + i];
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Transformer side: VAR.forward
// ---------------------------------------------------------------------------------------------

/** Per-layer intermediates of block 0, batch element 0 (to compare with the fixture's attention probe). */
export interface Probe {
  /** [L, C] input of block 0's attention: LN(x) * (1 + scale1) + shift1. */
  xIn: Float64Array;
  /** [H, L, D] after L2 norm and * tau. */
  q: Float64Array;
  /** [H, L, D] after L2 norm. */
  k: Float64Array;
  /** [H, L, D] raw (x_in @ Wv^T + v_bias). */
  v: Float64Array;
  /** [L, C] attention output, heads merged head-major (input of proj). */
  o: Float64Array;
  /** [L, C] after proj. */
  out: Float64Array;
}

/** y [N, Out] = x [N, In] @ weight[Out, In]^T + bias[Out] (bias optional). */
function linear(
  x: Float64Array,
  n: number,
  nIn: number,
  weight: Float32Array,
  bias: Float32Array | null,
  nOut: number,
): Float64Array {
  const y = new Float64Array(n * nOut);
  for (let r = 0; r < n; r++) {
    const xo = r * nIn;
    for (let o = 0; o < nOut; o++) {
      const wo = o * nIn;
      let s = bias === null ? 0 : bias[o];
      for (let i = 0; i < nIn; i++) s += x[xo + i] * weight[wo + i];
      y[r * nOut + o] = s;
    }
  }
  return y;
}

/** SiLU(v) = v * sigmoid(v), elementwise: [n] -> [n]. */
function silu(v: Float64Array): Float64Array {
  return v.map((a) => a / (1 + Math.exp(-a)));
}

/** GELU, tanh approximation. */
function geluTanh(a: number): number {
  return 0.5 * a *
    (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a * a * a)));
}

/** Modulated LayerNorm without affine: x [N, C] -> LN(x) * (1 + scale[C]) + shift[C]: [N, C]. */
function modulatedLN(
  x: Float64Array,
  n: number,
  c: number,
  eps: number,
  scale: Float64Array,
  shift: Float64Array,
): Float64Array {
  const y = new Float64Array(n * c);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let i = 0; i < c; i++) mean += x[r * c + i];
    mean /= c;
    let vr = 0;
    for (let i = 0; i < c; i++) vr += (x[r * c + i] - mean) ** 2;
    vr /= c;
    const inv = 1 / Math.sqrt(vr + eps);
    for (let i = 0; i < c; i++) {
      y[r * c + i] = (x[r * c + i] - mean) * inv * (1 + scale[i]) + shift[i];
    }
  }
  return y;
}

/**
 * Block-causal multi-head attention of one sequence: xIn [L, C] -> intermediates.
 * Query of scale s attends to the keys of scales 0..s (no 1/sqrt(D); the temperature is inside q).
 */
function attention(
  w: Weights,
  cfg: VarConfig,
  blk: number,
  xIn: Float64Array,
  level: Int32Array,
  begins: number[],
): Omit<Probe, "xIn"> {
  const c = cfg.width;
  const nh = cfg.heads;
  const d = c / nh;
  const seqLen = level.length;
  const p = `blocks.${blk}.attn.`;
  const qBias = get(w, p + "q_bias", c);
  const vBias = get(w, p + "v_bias", c);
  const bias = new Float32Array(3 * c); // [3C] = [q_bias | 0 | v_bias]
  bias.set(qBias, 0);
  bias.set(vBias, 2 * c);
  const qkv = linear(
    xIn,
    seqLen,
    c,
    get(w, p + "mat_qkv.weight", 3 * c * c),
    bias,
    3 * c,
  ); // [L, 3C]
  const scaleMul = get(w, p + "scale_mul_1H11", nh); // [H]
  const q = new Float64Array(nh * seqLen * d); // [H, L, D]
  const k = new Float64Array(nh * seqLen * d); // [H, L, D]
  const v = new Float64Array(nh * seqLen * d); // [H, L, D]
  for (let h = 0; h < nh; h++) {
    const tau = Math.exp(Math.min(scaleMul[h], MAX_SCALE_MUL));
    for (let t = 0; t < seqLen; t++) {
      let nq = 0;
      let nk = 0;
      for (let j = 0; j < d; j++) {
        nq += qkv[t * 3 * c + h * d + j] ** 2;
        nk += qkv[t * 3 * c + c + h * d + j] ** 2;
      }
      const fq = tau / Math.max(Math.sqrt(nq), L2_EPS);
      const fk = 1 / Math.max(Math.sqrt(nk), L2_EPS);
      const base = (h * seqLen + t) * d;
      for (let j = 0; j < d; j++) {
        q[base + j] = qkv[t * 3 * c + h * d + j] * fq;
        k[base + j] = qkv[t * 3 * c + c + h * d + j] * fk;
        v[base + j] = qkv[t * 3 * c + 2 * c + h * d + j];
      }
    }
  }
  const o = new Float64Array(seqLen * c); // [L, C], channel = h * D + j
  const scores = new Float64Array(seqLen); // [keys visible to one query]
  for (let h = 0; h < nh; h++) {
    for (let t = 0; t < seqLen; t++) {
      const nKeys = begins[level[t] + 1]; // keys 0 .. end of the query's scale
      const qo = (h * seqLen + t) * d;
      let mx = -Infinity;
      for (let s = 0; s < nKeys; s++) {
        const ko = (h * seqLen + s) * d;
        let dot = 0;
        for (let j = 0; j < d; j++) dot += q[qo + j] * k[ko + j];
        scores[s] = dot;
        if (dot > mx) mx = dot;
      }
      let sum = 0;
      for (let s = 0; s < nKeys; s++) {
        scores[s] = Math.exp(scores[s] - mx);
        sum += scores[s];
      }
      const oo = t * c + h * d;
      for (let s = 0; s < nKeys; s++) {
        const pr = scores[s] / sum;
        const vo = (h * seqLen + s) * d;
        for (let j = 0; j < d; j++) o[oo + j] += pr * v[vo + j];
      }
    }
  }
  const out = linear(
    o,
    seqLen,
    c,
    get(w, p + "proj.weight", c * c),
    get(w, p + "proj.bias", c),
    c,
  ); // [L, C]
  return { q, k, v, o, out };
}

/** Official VAR.forward(label_B, x_BLCv_wo_first_l) with the block-causal mask: returns logits [B, L, V] and the block-0 probe. */
export function varForward64(
  w: Weights,
  cfg: VarConfig,
  labels: readonly number[],
  xTF: Float64Array,
): { logits: Float64Array; probe: Probe } {
  const c = cfg.width;
  const cv = cfg.cvae;
  const nV = cfg.vocab;
  const hidden = Math.round(c * cfg.mlpRatio);
  const batch = labels.length;
  const begins = scaleBegins(cfg.schedule);
  const seqLen = begins[cfg.schedule.length];
  if (xTF.length !== batch * (seqLen - 1) * cv) {
    throw new Error(
      `xTF: expected ${batch * (seqLen - 1) * cv} entries, got ${xTF.length}`,
    );
  }
  if (c % cfg.heads !== 0) throw new Error("width must be a multiple of heads");
  // level[t] = scale index of token t: [L]
  const level = new Int32Array(seqLen);
  for (let s = 0; s < cfg.schedule.length; s++) {
    level.fill(s, begins[s], begins[s + 1]);
  }

  const classEmb = get(w, "class_emb.weight", (cfg.classes + 1) * c); // [classes + 1, C]
  const posStart = get(w, "pos_start", c); // [C]
  const pos = get(w, "pos_1LC", seqLen * c); // [L, C]
  const lvlEmb = get(w, "lvl_embed.weight", cfg.schedule.length * c); // [S, C]
  const wordW = get(w, "word_embed.weight", c * cv); // [C, Cvae]
  const wordB = get(w, "word_embed.bias", c); // [C]

  const logits = new Float64Array(batch * seqLen * nV); // [B, L, V]
  let probe: Probe | null = null;
  for (let b = 0; b < batch; b++) {
    const label = labels[b];
    if (!Number.isInteger(label) || label < 0 || label >= cfg.classes) {
      throw new Error(`bad label ${label}`);
    }
    const cond = Float64Array.from(
      classEmb.subarray(label * c, (label + 1) * c),
    ); // [C]
    const sCond = silu(cond); // [C]

    // x [L, C] = concat(sos, word_embed(xTF)) + lvl_embed[level] + pos_1LC
    const words = linear(
      xTF.subarray(b * (seqLen - 1) * cv, (b + 1) * (seqLen - 1) * cv),
      seqLen - 1,
      cv,
      wordW,
      wordB,
      c,
    );
    const x = new Float64Array(seqLen * c);
    for (let i = 0; i < c; i++) x[i] = cond[i] + posStart[i];
    x.set(words, c);
    for (let t = 0; t < seqLen; t++) {
      for (let i = 0; i < c; i++) {
        x[t * c + i] += lvlEmb[level[t] * c + i] + pos[t * c + i];
      }
    }

    // shared AdaLN: S [6C] computed once from cond
    const shared = cfg.sharedAdaLN
      ? linear(
        sCond,
        1,
        c,
        get(w, "shared_ada_lin.1.weight", 6 * c * c),
        get(w, "shared_ada_lin.1.bias", 6 * c),
        6 * c,
      )
      : null;

    for (let blk = 0; blk < cfg.depth; blk++) {
      const p = `blocks.${blk}.`;
      // ada [6C] = gamma1 | gamma2 | scale1 | scale2 | shift1 | shift2
      let ada: Float64Array;
      if (shared !== null) {
        const gss = get(w, p + "ada_gss", 6 * c);
        ada = shared.map((a, i) => a + gss[i]);
      } else {
        ada = linear(
          sCond,
          1,
          c,
          get(w, p + "ada_lin.1.weight", 6 * c * c),
          get(w, p + "ada_lin.1.bias", 6 * c),
          6 * c,
        );
      }
      const chunk = (i: number) => ada.subarray(i * c, (i + 1) * c);
      const [gamma1, gamma2, scale1, scale2, shift1, shift2] = [
        0,
        1,
        2,
        3,
        4,
        5,
      ].map(chunk);

      // attention branch
      const xIn = modulatedLN(x, seqLen, c, cfg.normEps, scale1, shift1); // [L, C]
      const att = attention(w, cfg, blk, xIn, level, begins);
      if (blk === 0 && b === 0) probe = { xIn, ...att };
      for (let t = 0; t < seqLen; t++) {
        for (let i = 0; i < c; i++) {
          x[t * c + i] += gamma1[i] * att.out[t * c + i];
        }
      }

      // FFN branch: fc2(gelu_tanh(fc1(.)))
      const xf = modulatedLN(x, seqLen, c, cfg.normEps, scale2, shift2); // [L, C]
      const h1 = linear(
        xf,
        seqLen,
        c,
        get(w, p + "ffn.fc1.weight", hidden * c),
        get(w, p + "ffn.fc1.bias", hidden),
        hidden,
      ); // [L, 4C]
      for (let i = 0; i < h1.length; i++) h1[i] = geluTanh(h1[i]);
      const h2 = linear(
        h1,
        seqLen,
        hidden,
        get(w, p + "ffn.fc2.weight", c * hidden),
        get(w, p + "ffn.fc2.bias", c),
        c,
      ); // [L, C]
      for (let t = 0; t < seqLen; t++) {
        for (let i = 0; i < c; i++) x[t * c + i] += gamma2[i] * h2[t * c + i];
      }
    }

    // head: AdaLN [scale | shift] from the raw class embedding, then Linear(C -> V)
    const headAda = linear(
      sCond,
      1,
      c,
      get(w, "head_nm.ada_lin.1.weight", 2 * c * c),
      get(w, "head_nm.ada_lin.1.bias", 2 * c),
      2 * c,
    ); // [2C]
    const xh = modulatedLN(
      x,
      seqLen,
      c,
      cfg.normEps,
      headAda.subarray(0, c),
      headAda.subarray(c, 2 * c),
    ); // [L, C]
    logits.set(
      linear(
        xh,
        seqLen,
        c,
        get(w, "head.weight", nV * c),
        get(w, "head.bias", nV),
        nV,
      ),
      b * seqLen * nV,
    );
  }
  if (probe === null) throw new Error("empty batch");
  return { logits, probe };
}
