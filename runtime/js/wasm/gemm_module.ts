/**
 * @file The WebAssembly SIMD128 GEMM: out[M, N] = a[M, K] · w[N, K]ᵀ (+ bias), both operands
 * contiguous along K (rows padded to Kp, a multiple of 4, with zeros).
 *
 * Tiles of RM rows × RN columns keep RM·RN f32x4 accumulators over K (one per output, four partial
 * sums each), so every vector loaded from a feeds RN multiply-adds and every vector of w feeds RM;
 * the four lanes are summed once per K block. K is cut into blocks of KC (the RN rows of w stay in
 * L1 while the RM-row tiles of an MC-row block of a stream from L2); partial sums of later K blocks
 * are added to `out`. Edge tiles use 1-row / 1-column variants. From NT_MIN_ROWS rows of a
 * (`gemm.ts`) the broadcast kernel `nt` runs instead: a packed into panels of 8 rows, 6 × 8 outputs
 * per tile with no horizontal sums (see `ntTile`).
 *
 * `run(thread)` is the thread-pool entry: it claims chunks of the job in the control block with
 * compare-and-swap until none are left, so the calling thread and any workers share one job with
 * dynamic load balancing. A job is a GEMM (chunks are sub-blocks of the output) or an attention
 * call (chunks are the job records of attention_module.ts; `thread` picks the scratch).
 */
import { type AttentionConfig, attentionFns, attentionNames, JOB_BYTES, scratchBytes } from "./attention_module.ts";
import { encodeModule, F32, Fn, I32, V128 } from "./encode.ts";
import { gnApply, gnStats } from "./norm_module.ts";
import { consts, emitGelu, emitSilu, vec } from "./elementwise_module.ts";
import { winograd4Job, winogradJob, winogradPad, winogradWeights } from "./winograd_module.ts";

/** Tile and blocking parameters, and which instructions to use. */
export interface GemmConfig {
  /** Rows per register tile. */
  readonly rm: number;
  /** Output columns per register tile. */
  readonly rn: number;
  /** K block, in floats (a multiple of 4). */
  readonly kc: number;
  /** Rows of a per K block pass. */
  readonly mc: number;
  /** Tiles and blocks of the attention kernels. */
  readonly attention: AttentionConfig;
  /** f32x4.relaxed_madd instead of f32x4.mul + f32x4.add. */
  readonly relaxed: boolean;
  /** Import a shared memory (for worker threads) and export `run`. */
  readonly shared: boolean;
  /** Memory limits in 64 KiB pages. */
  readonly initialPages: number;
  readonly maximumPages: number;
}

/**
 * Control block at address 0 (i32 slots): the job `run` executes. A GEMM's chunk c covers rows
 * [mi·mStep, +mStep) and columns [ni·nStep, +nStep) with mi = c mod mCount, ni = ⌊c / mCount⌋;
 * an attention call's chunk c is the job record at JOBS + c·JOB_BYTES.
 */
export const CTL = {
  /** Job counter; workers wait on it. */
  SEQ: 0,
  /** (job & 0x7fff) << 16 | next unclaimed chunk. */
  CLAIM: 1,
  /** Chunks finished; the last one notifies. */
  DONE: 2,
  TOTAL: 3,
  A: 4,
  W: 5,
  BIAS: 6,
  OUT: 7,
  M: 8,
  N: 9,
  KP: 10,
  M_STEP: 11,
  N_STEP: 12,
  M_COUNT: 13,
  /** The job's kind (`JOB`). */
  KIND: 14,
  /** Attention: job records, per-thread scratch (thread t at SCRATCH + t·scratchBytes). */
  JOBS: 15,
  SCRATCH: 16,
  /** Attention: q/k width, v/output row length (padded). */
  D: 17,
  DVP: 18,
  /** Attention: the logit scale, as an f32. */
  SCALE: 19,
  /** NN GEMM: row strides of b and out, in bytes (M, N, KP, A, W = b, BIAS, OUT as for NT). */
  LDB: 20,
  LDO: 21,
  /** Bytes reserved for the control block; data starts here. */
  BYTES: 256,
} as const;

/** Job kinds `run` dispatches on (CTL.KIND), and what a chunk of each is. */
export const JOB = {
  /** Rows × columns block of the NT GEMM. */
  gemm: 0,
  /** An attention job record. */
  attention: 1,
  /** Rows × columns block of the NN GEMM. */
  nn: 2,
  /** A Winograd F(2×2, 3×3) band (× output channels). */
  wino: 3,
  /** A Winograd F(4×4, 3×3) band (× output channels). */
  wino4: 4,
  /** Rows × columns block of the broadcast NT GEMM. */
  nt: 5,
  /** GroupNorm statistics of one channel. */
  gnStats: 6,
  /** GroupNorm (+ SiLU) applied to one channel. */
  gnApply: 7,
  /** One channel of a Winograd input padded. */
  winoPad: 8,
  /** M_STEP panels of 8 rows (A = rows, W = panels, M = panels in all, KP = K) packed by `pack8`. */
  pack8: 9,
} as const;

/** K steps of 4 floats per unrolled iteration of the micro-kernel. */
const UNROLL = 4;
/**
 * K steps per unrolled iteration of the broadcast NT micro-kernel: 8 halves its loop overhead
 * against 4 (in one process, 512³ kernel calls alternated: 3–4 % faster).
 */
const NT_UNROLL = 8;

/**
 * The micro-kernel (pa, pw, po, pb, klB, kpB, nB, first): one rm × rn tile over one K block. Each
 * row of a and w has its own pointer, advanced by 16·UNROLL bytes per iteration; the unrolled loads
 * use constant offsets, so an iteration costs rm + rn pointer adds for UNROLL·rm·rn multiply-adds.
 */
function tile(rm: number, rn: number, relaxed: boolean): Fn {
  const f = new Fn(`tile_${rm}x${rn}`, 8);
  const [pa, pw, po, pb, klB, kpB, nB, first] = [0, 1, 2, 3, 4, 5, 6, 7];
  const end = f.local(I32), endU = f.local(I32);
  const ar = Array.from({ length: rm }, () => f.local(I32));
  const wc = Array.from({ length: rn }, () => f.local(I32));
  const acc = Array.from({ length: rm * rn }, () => f.local(V128));
  const vw = Array.from({ length: rn }, () => f.local(V128));
  const va = f.local(V128);
  const base = f.local(F32);
  ar.forEach((l, r) => f.local_get(pa).local_get(kpB).i32_const(r).i32_mul().i32_add().local_set(l));
  wc.forEach((l, c) => f.local_get(pw).local_get(kpB).i32_const(c).i32_mul().i32_add().local_set(l));
  for (const l of acc) f.f32x4_const(0).local_set(l);
  // row 0 of a ends at pa + klB; the unrolled loop runs while a whole UNROLL group fits
  f.local_get(pa).local_get(klB).i32_add().local_set(end);
  f.local_get(end).i32_const(16 * (UNROLL - 1)).i32_sub().local_set(endU);
  const step = (u: number) => {
    wc.forEach((l, c) => f.local_get(l).v128_load(16 * u).local_set(vw[c]!));
    ar.forEach((l, r) => {
      f.local_get(l).v128_load(16 * u).local_set(va);
      for (let c = 0; c < rn; c++) {
        const s = acc[r * rn + c]!;
        if (relaxed) f.local_get(va).local_get(vw[c]!).local_get(s).f32x4_relaxed_madd().local_set(s);
        else f.local_get(s).local_get(va).local_get(vw[c]!).f32x4_mul().f32x4_add().local_set(s);
      }
    });
  };
  const advance = (bytes: number) => {
    for (const l of [...ar, ...wc]) f.local_get(l).i32_const(bytes).i32_add().local_set(l);
  };
  f.block(() =>
    f.loop(() => {
      f.local_get(ar[0]!).local_get(endU).i32_ge_u().br_if(1);
      for (let u = 0; u < UNROLL; u++) step(u);
      advance(16 * UNROLL);
      f.br(0);
    })
  );
  f.block(() =>
    f.loop(() => {
      f.local_get(ar[0]!).local_get(end).i32_ge_u().br_if(1);
      step(0);
      advance(16);
      f.br(0);
    })
  );
  for (let r = 0; r < rm; r++) {
    for (let c = 0; c < rn; c++) {
      const addr = () => f.local_get(po).local_get(nB).i32_const(r).i32_mul().i32_add().i32_const(4 * c).i32_add();
      // base = first ? (pb ? bias[c] : 0) : out[r, c]
      f.local_get(first).if(
        () =>
          f.local_get(pb).if(
            () => f.local_get(pb).f32_load(4 * c).local_set(base),
            () => f.f32_const(0).local_set(base),
          ),
        () => (addr(), f.f32_load().local_set(base)),
      );
      // out[r, c] = base + Σ lanes
      const s = acc[r * rn + c]!;
      addr();
      f.local_get(s).local_get(s).local_get(s).f32x4_shuffle(2, 3, 0, 1).f32x4_add().local_set(s);
      f.local_get(s).local_get(s).local_get(s).f32x4_shuffle(1, 0, 3, 2).f32x4_add().f32x4_extract_lane(0);
      f.local_get(base).f32_add().f32_store();
    }
  }
  return f;
}

/**
 * The K loop of a micro-kernel: `step(u)` emits step u of a group of `unroll` and `advance(n)`
 * moves the operand pointers n steps on; whole groups run while they fit, then single steps. The
 * loop is bounded by the pointer p (advanced `bytes` per step by `advance`) against end = p +
 * kl·bytes, so no step counter lives in a register: WebAssembly engines without guard pages (Deno)
 * spend an extra compare per load on bounds checks, and a kernel whose loop overhead also spills is
 * bound by instruction issue rather than by its multiply-adds. end and endU are i32 locals.
 */
function kLoop(
  f: Fn,
  p: number,
  bytes: number,
  kl: number,
  [end, endU]: readonly [number, number],
  unroll: number,
  step: (u: number) => void,
  advance: (n: number) => void,
): void {
  f.local_get(p).local_get(kl).i32_const(bytes).i32_mul().i32_add().local_tee(end);
  f.i32_const(bytes * (unroll - 1)).i32_sub().local_set(endU);
  for (const n of [unroll, 1]) {
    f.block(() =>
      f.loop(() => {
        f.local_get(p).local_get(n === 1 ? end : endU).i32_ge_u().br_if(1);
        for (let u = 0; u < n; u++) step(u);
        advance(n);
        f.br(0);
      })
    );
  }
}

/**
 * Broadcast NT GEMM tiles: MR rows of w × NR = 8 rows of a (one packed panel of a), K blocks of KC.
 * 6 × 2 f32x4 accumulators, two vectors of a and one splat of w live at once: 15 of the 16 vector
 * registers of x64 (the engine keeps one as scratch). KC = 1024 keeps the transformer's K ≤ 1024
 * products in one block (no partial sums); MR rows of w are then 24 KiB, about L1, and a's panels
 * stream from L2/L3 with the prefetchers keeping up (kernel calls alternated in one process,
 * 1024³: KC 1024 4–7 % faster than 256; 512 × 1024 × 4096 and 512 × 3072 × 1024 no slower).
 * Within a K block, rows of a go in blocks of MC = 128 (a 512 KiB block of a at KC = 1024, half an
 * L2) past all of a chunk's columns, so that two threads do not both stream a whole K block of a
 * from L3 once per MR columns (2 threads, 2048 × 4096 × 1024, 6 runs alternated: median 82 →
 * 87 GFLOP/s; 2048 × 1024 × 4096, 512 × 4096 × 1024 and 512 × 1024 × 1024 within the noise).
 */
export const NT = { mr: 6, nr: 8, kc: 1024, nq: 48, mc: 128 } as const;

/** Activation codes of the broadcast NT kernel's epilogue (flags bits 2–3). */
export const NT_ACT = { none: 0, silu: 1, gelu_tanh: 2 } as const;

/**
 * The broadcast NT micro-kernel nt_tile(pw, ldw, rows, pa, pt, ldt, po, ldo, pbias, kl, flags):
 * outᵀ[MR, 8] (+)= w[MR, kl] · a-panelᵀ, i.e. out[8 rows of a, MR columns]. Row r of w is read
 * at pw + min(r, rows − 1)·ldw (rows past the end repeat the last one; their columns land in the
 * padding of out); the panel of a is [kl][8] (8 rows of a interleaved). Each k splats one float
 * of each w row against two vectors of a: MR·2 multiply-adds per MR + 2 loads, no horizontal sums.
 * flags bit 0 (first K block): start from bias[r] (pbias ≠ 0) or 0, else from the partial sums
 * outᵀ at pt (rows ldt bytes apart); bit 1 (last K block): store to out transposed (rows of a ldo
 * bytes apart), else the partial sums back to pt; bits 2–3 (`NT_ACT`): on the last K block, the
 * activation applied to the finished float32 sums before they are stored (elementwise_module.ts's
 * arithmetic, so the bits are those of the GEMM followed by `unary`).
 */
function ntTile(relaxed: boolean): Fn {
  const { mr } = NT;
  const f = new Fn("nt_tile", 11);
  const [pw, ldw, rows, pa, pt, ldt, po, ldo, pbias, kl, flags] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const end = f.local(I32), endU = f.local(I32);
  const wr = Array.from({ length: mr }, () => f.local(I32));
  const acc = Array.from({ length: 2 * mr }, () => f.local(V128));
  const va = [f.local(V128), f.local(V128)];
  const vw = f.local(V128);
  // wr[r] = pw + min(r, rows − 1)·ldw
  wr.forEach((l, r) => {
    f.local_get(pw).i32_const(r).local_get(rows).i32_const(1).i32_sub();
    f.i32_const(r).local_get(rows).i32_lt_s().select().local_get(ldw).i32_mul().i32_add().local_set(l);
  });
  const partial = (r: number) => f.local_get(pt).local_get(ldt).i32_const(r).i32_mul().i32_add();
  f.local_get(flags).i32_const(1).i32_and().if(
    () => {
      for (let r = 0; r < mr; r++) {
        f.local_get(pbias).if(
          () => f.local_get(pbias).v128_load32_splat(4 * r).local_set(acc[2 * r]!),
          () => f.f32x4_const(0).local_set(acc[2 * r]!),
        );
        f.local_get(acc[2 * r]!).local_set(acc[2 * r + 1]!);
      }
    },
    () => acc.forEach((s, i) => partial(i >> 1).v128_load(16 * (i & 1)).local_set(s)),
  );
  const step = (u: number) => {
    for (let c = 0; c < 2; c++) f.local_get(pa).v128_load(16 * (2 * u + c)).local_set(va[c]!);
    for (let r = 0; r < mr; r++) {
      f.local_get(wr[r]!).v128_load32_splat(4 * u).local_set(vw);
      for (let c = 0; c < 2; c++) {
        const s = acc[2 * r + c]!;
        if (relaxed) f.local_get(vw).local_get(va[c]!).local_get(s).f32x4_relaxed_madd().local_set(s);
        else f.local_get(s).local_get(vw).local_get(va[c]!).f32x4_mul().f32x4_add().local_set(s);
      }
    }
  };
  kLoop(f, pa, 32, kl, [end, endU], NT_UNROLL, step, (ks) => {
    f.local_get(pa).i32_const(32 * ks).i32_add().local_set(pa);
    for (const l of wr) f.local_get(l).i32_const(4 * ks).i32_add().local_set(l);
  });
  const scratch = Array.from({ length: 4 }, () => vec(f, 4));
  const act = (emit: typeof emitSilu) => {
    const k = consts(f);
    for (let g = 0; g < acc.length; g += 4) emit(f, k, acc.slice(g, g + 4), acc.slice(g, g + 4), scratch);
  };
  f.local_get(flags).i32_const(2).i32_and().if(
    () => {
      const code = () => f.local_get(flags).i32_const(2).i32_shr_u();
      code().i32_const(NT_ACT.silu).i32_eq().if(
        () => act(emitSilu),
        () => code().i32_const(NT_ACT.gelu_tanh).i32_eq().if(() => act(emitGelu)),
      );
      // out[row 4c + l of the panel, column r] = lane l of acc[r][c]
      for (let c = 0; c < 2; c++) {
        for (let l = 0; l < 4; l++) {
          for (let r = 0; r < mr; r++) {
            f.local_get(po).local_get(ldo).i32_const(4 * c + l).i32_mul().i32_add();
            f.local_get(acc[2 * r + c]!).f32x4_extract_lane(l).f32_store(4 * r);
          }
        }
      }
    },
    () => acc.forEach((s, i) => partial(i >> 1).local_get(s).v128_store(16 * (i & 1))),
  );
  return f;
}

/**
 * nt(w, apack, bias, out, t, Mp, N, K, act, m0, m1, n0, n1): rows [m0, m1) of a (multiples of 8) ×
 * columns [n0, n1) of out = act(a · wᵀ (+ bias)) (act: an `NT_ACT` code), with w [N, K] rows in place, a packed as panels
 * [Mp/8][K][8], bias padded to Nq = ⌈N/NQ⌉·NQ floats (0: none), out [Mp, Nq] and the partial sums
 * t [Nq, Mp] (read only when K > KC). NQ = 48 (a multiple of MR and of 16 floats): rows of out start
 * on cache lines, and jobs split along N at multiples of NQ, so two threads never write one line.
 * Per K block and block of MC rows of a, the panels of a stream past MR rows of w (MR·KC floats).
 */
function ntDriver(at: (name: string) => number): Fn {
  const { mr, kc } = NT;
  const f = new Fn("nt", 13);
  const [w, a, bias, out, t, Mp, N, K, act, m0, m1, n0, n1] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const kc0 = f.local(I32), kl = f.local(I32), n = f.local(I32), m = f.local(I32), ldo = f.local(I32);
  const rows = f.local(I32), flags = f.local(I32), mb = f.local(I32), mEnd = f.local(I32);
  // ldo = ⌈N/NQ⌉·NQ·4
  const { nq } = NT;
  f.local_get(N).i32_const(nq - 1).i32_add().i32_const(nq).i32_div_u().i32_const(4 * nq).i32_mul().local_set(ldo);
  f.for(kc0, () => f.i32_const(0), () => f.local_get(K), kc, () => {
    // kl = min(KC, K − kc0); flags = (kc0 = 0) | (kc0 + KC ≥ K) << 1 | act << 2
    f.i32_const(kc).local_get(K).local_get(kc0).i32_sub().local_tee(kl);
    f.i32_const(kc).local_get(kl).i32_lt_s().select().local_set(kl);
    f.local_get(kc0).i32_eqz().local_get(kc0).i32_const(kc).i32_add().local_get(K).i32_ge_s().i32_const(1).i32_shl();
    f.i32_add().local_get(act).i32_const(2).i32_shl().i32_add().local_set(flags);
    f.for(mb, () => f.local_get(m0), () => f.local_get(m1), NT.mc, () => {
      // mEnd = min(mb + MC, m1)
      f.local_get(mb).i32_const(NT.mc).i32_add().local_tee(mEnd).local_get(m1).local_get(mEnd).local_get(m1).i32_lt_s();
      f.select().local_set(mEnd);
      f.for(n, () => f.local_get(n0), () => f.local_get(n1), mr, () => {
        // rows = min(MR, N − n)
        f.i32_const(mr).local_get(N).local_get(n).i32_sub().local_tee(rows);
        f.i32_const(mr).local_get(rows).i32_lt_s().select().local_set(rows);
        f.for(m, () => f.local_get(mb), () => f.local_get(mEnd), NT.nr, () => {
          f.local_get(w).local_get(n).local_get(K).i32_mul().local_get(kc0).i32_add().i32_const(4).i32_mul().i32_add();
          f.local_get(K).i32_const(4).i32_mul().local_get(rows);
          f.local_get(a).local_get(m).local_get(K).i32_mul().local_get(kc0).i32_const(NT.nr).i32_mul().i32_add();
          f.i32_const(4).i32_mul().i32_add();
          f.local_get(t).local_get(n).local_get(Mp).i32_mul().local_get(m).i32_add().i32_const(4).i32_mul().i32_add();
          f.local_get(Mp).i32_const(4).i32_mul();
          f.local_get(out).local_get(m).local_get(ldo).i32_mul().i32_add().local_get(n).i32_const(4).i32_mul()
            .i32_add();
          f.local_get(ldo);
          f.local_get(bias).local_get(n).i32_const(4).i32_mul().i32_add().i32_const(0).local_get(bias).select();
          f.local_get(kl).local_get(flags).call(at("nt_tile"));
        });
      });
    });
  });
  return f;
}

/**
 * A 4×4 transpose of f32x4 vectors: row i loaded from the address `address(i)` pushes into x[i], then
 * `store(j, column)` for each column j, where `column()` pushes column j (eight shuffles in all,
 * through the scratch vectors t).
 */
function transposeBlock(
  f: Fn,
  x: readonly number[],
  t: readonly number[],
  address: (i: number) => void,
  store: (j: number, column: () => void) => void,
): void {
  x.forEach((l, i) => (address(i), f.v128_load().local_set(l)));
  f.local_get(x[0]!).local_get(x[1]!).f32x4_shuffle(0, 4, 1, 5).local_set(t[0]!);
  f.local_get(x[0]!).local_get(x[1]!).f32x4_shuffle(2, 6, 3, 7).local_set(t[1]!);
  f.local_get(x[2]!).local_get(x[3]!).f32x4_shuffle(0, 4, 1, 5).local_set(t[2]!);
  f.local_get(x[2]!).local_get(x[3]!).f32x4_shuffle(2, 6, 3, 7).local_set(t[3]!);
  for (let j = 0; j < 4; j++) {
    const [a, b] = j < 2 ? [t[0]!, t[2]!] : [t[1]!, t[3]!];
    const [l0, l1, l2, l3] = j % 2 === 0 ? [0, 1, 4, 5] : [2, 3, 6, 7];
    store(j, () => f.local_get(a).local_get(b).f32x4_shuffle(l0!, l1!, l2!, l3!));
  }
}

/**
 * pack8(src, dst, panels, K): rows [8·panels, K] at src (K a multiple of 4) -> panels [panels][K][8]
 * at dst, the broadcast NT kernel's a: four K steps of eight rows at a time, as two 4×4 transposes
 * of f32x4 shuffles.
 */
function pack8(): Fn {
  const f = new Fn("pack8", 4);
  const [src, dst, panels, K] = [0, 1, 2, 3];
  const p = f.local(I32), k = f.local(I32), row = f.local(I32), out = f.local(I32), ld = f.local(I32);
  const r = Array.from({ length: 4 }, () => f.local(V128)), t = Array.from({ length: 4 }, () => f.local(V128));
  f.local_get(K).i32_const(4).i32_mul().local_set(ld);
  f.local_get(dst).local_set(out);
  f.for(p, () => f.i32_const(0), () => f.local_get(panels), 1, () => {
    f.for(k, () => f.i32_const(0), () => f.local_get(ld), 16, () => {
      for (let half = 0; half < 2; half++) {
        // rows 4·half … 4·half + 3 of the panel, K steps k/4 … k/4 + 3
        f.local_get(src).local_get(p).i32_const(8).i32_mul().i32_const(4 * half).i32_add().local_get(ld).i32_mul();
        f.i32_add().local_get(k).i32_add().local_set(row);
        transposeBlock(f, r, t, (i) => {
          f.local_get(row);
          if (i > 0) f.local_get(ld).i32_const(i).i32_mul().i32_add();
        }, (j, column) => {
          // K step j: the four rows at out + 32·j + 16·half
          f.local_get(out), column(), f.v128_store(32 * j + 16 * half);
        });
      }
      f.local_get(out).i32_const(128).i32_add().local_set(out);
    });
  });
  return f;
}

/**
 * transpose4(src, dst, R, C, lds, ldd): dst[c][r] = src[r][c] for r < R rounded up to 4 and c < C
 * (a multiple of 4), row strides lds and ldd in bytes: 4×4 blocks, each four loads, eight shuffles
 * and four stores. Rows past R up to the multiple of 4 are read (the caller leaves room) and land
 * in columns past R of dst.
 */
function transpose4(): Fn {
  const f = new Fn("transpose4", 6);
  const [src, dst, R, C, lds, ldd] = [0, 1, 2, 3, 4, 5];
  const r = f.local(I32), c = f.local(I32), from = f.local(I32), to = f.local(I32);
  const x = Array.from({ length: 4 }, () => f.local(V128)), t = Array.from({ length: 4 }, () => f.local(V128));
  f.for(r, () => f.i32_const(0), () => f.local_get(R), 4, () => {
    f.for(c, () => f.i32_const(0), () => f.local_get(C), 4, () => {
      f.local_get(src).local_get(r).local_get(lds).i32_mul().i32_add().local_get(c).i32_const(4).i32_mul().i32_add();
      f.local_set(from);
      f.local_get(dst).local_get(c).local_get(ldd).i32_mul().i32_add().local_get(r).i32_const(4).i32_mul().i32_add();
      f.local_set(to);
      transposeBlock(f, x, t, (i) => {
        f.local_get(from);
        if (i > 0) f.local_get(lds).i32_const(i).i32_mul().i32_add();
      }, (j, column) => {
        f.local_get(to);
        if (j > 0) f.local_get(ldd).i32_const(j).i32_mul().i32_add();
        column(), f.v128_store();
      });
    });
  });
  return f;
}

/**
 * NN GEMM tiles: MR rows of a packed panel × NR = 8 columns of b; K blocks of KC. MR = 6 gives 12
 * accumulators (two vectors of b and one splat live: 15 vector registers), 8 loads per 12
 * multiply-adds against 6 per 8 at MR = 4 (kernel calls alternated in one process: 14 % faster;
 * the d16 decode, processes alternated: 4.5 % faster, its channel counts padded to multiples of 6).
 */
export const NN = { mr: 6, nr: 8, kc: 256 } as const;

/**
 * The NN micro-kernel nn_tile(pa, pb, po, pbias, kl, ldb, ldo, first): out[MR, 8] (+)= A[MR, kl] ·
 * b[kl, 8]. A is a packed panel [kl][MR] (MR rows interleaved, so one pointer serves all rows), b
 * rows are ldb bytes apart. Each k splats MR values of A against two vectors of b: MR·2 independent
 * accumulators, no horizontal sums. first: start from bias[row] (pbias ≠ 0) or 0, else from out.
 */
function nnTile(relaxed: boolean): Fn {
  const { mr } = NN;
  const f = new Fn(`nn_tile`, 8);
  const [pa, pb, po, pbias, kl, ldb, ldo, first] = [0, 1, 2, 3, 4, 5, 6, 7];
  const end = f.local(I32), endU = f.local(I32);
  const acc = Array.from({ length: 2 * mr }, () => f.local(V128));
  const vb = [f.local(V128), f.local(V128)];
  const va = f.local(V128);
  for (const l of acc) f.f32x4_const(0).local_set(l);
  const step = (u: number) => {
    f.local_get(pb).v128_load().local_set(vb[0]!);
    f.local_get(pb).v128_load(16).local_set(vb[1]!);
    f.local_get(pb).local_get(ldb).i32_add().local_set(pb);
    for (let r = 0; r < mr; r++) {
      f.local_get(pa).v128_load32_splat(4 * (u * mr + r)).local_set(va);
      for (let c = 0; c < 2; c++) {
        const s = acc[2 * r + c]!;
        if (relaxed) f.local_get(va).local_get(vb[c]!).local_get(s).f32x4_relaxed_madd().local_set(s);
        else f.local_get(s).local_get(va).local_get(vb[c]!).f32x4_mul().f32x4_add().local_set(s);
      }
    }
  };
  kLoop(
    f,
    pa,
    4 * mr,
    kl,
    [end, endU],
    UNROLL,
    step,
    (ks) => f.local_get(pa).i32_const(4 * mr * ks).i32_add().local_set(pa),
  );
  for (let r = 0; r < mr; r++) {
    for (let c = 0; c < 2; c++) {
      const s = acc[2 * r + c]!;
      const addr = () => f.local_get(po).local_get(ldo).i32_const(r).i32_mul().i32_add();
      addr();
      f.local_get(first).if(
        () =>
          f.local_get(pbias).if(
            () => f.local_get(pbias).v128_load32_splat(4 * r).local_get(s).f32x4_add().local_set(s),
          ),
        () => addr().v128_load(16 * c).local_get(s).f32x4_add().local_set(s),
      );
      f.local_get(s).v128_store(16 * c);
    }
  }
  return f;
}

/**
 * nn(apack, b, bias, out, K, ldb, ldo, m0, m1, n0, n1): rows [m0, m1) (multiples of MR) × columns
 * [n0, n1) (multiples of 8) of out = A · b (+ bias per row), A packed as panels [K][MR] one after
 * another. K is cut into blocks of KC. "nn" walks column strips outside panels: a strip of b
 * (KC × 32 bytes) stays in L1 while the panels stream from L2 (wide b: convolutions over many
 * pixels). "nn_m" walks panels outside strips: a panel stays in L1 while a narrow b (a Winograd
 * band) stays in L2, so each panel of A is read once.
 */
function nnDriver(at: (name: string) => number, panelsOutside: boolean): Fn {
  const { mr, nr, kc } = NN;
  const f = new Fn(panelsOutside ? "nn_m" : "nn", 11);
  const [a, b, bias, out, K, ldb, ldo, m0, m1, n0, n1] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const kc0 = f.local(I32), kl = f.local(I32), n = f.local(I32), m = f.local(I32);
  f.for(kc0, () => f.i32_const(0), () => f.local_get(K), kc, () => {
    // kl = min(KC, K − kc0)
    f.i32_const(kc).local_get(K).local_get(kc0).i32_sub().local_tee(kl);
    f.i32_const(kc).local_get(kl).i32_lt_s().select().local_set(kl);
    const strips = (body: () => void) => f.for(n, () => f.local_get(n0), () => f.local_get(n1), nr, body);
    const panels = (body: () => void) => f.for(m, () => f.local_get(m0), () => f.local_get(m1), mr, body);
    (panelsOutside ? panels : strips)(() => {
      (panelsOutside ? strips : panels)(() => {
        // panel m/MR starts at a + m·K·4; its K block at + kc0·MR·4
        f.local_get(a).local_get(m).local_get(K).i32_mul().i32_const(4).i32_mul().i32_add();
        f.local_get(kc0).i32_const(4 * mr).i32_mul().i32_add();
        f.local_get(b).local_get(kc0).local_get(ldb).i32_mul().i32_add().local_get(n).i32_const(4).i32_mul().i32_add();
        f.local_get(out).local_get(m).local_get(ldo).i32_mul().i32_add().local_get(n).i32_const(4).i32_mul().i32_add();
        f.local_get(bias).local_get(m).i32_const(4).i32_mul().i32_add().i32_const(0).local_get(bias).select();
        f.local_get(kl).local_get(ldb).local_get(ldo).local_get(kc0).i32_eqz().call(at("nn_tile"));
      });
    });
  });
  return f;
}

/**
 * gemm(a, w, bias, out, M, N, Kp, m0, m1, n0, n1): rows [m0, m1) × columns [n0, n1) of out. All
 * pointers are byte addresses; bias = 0 means none. Calls the tiles at indices `tiles`
 * ([rm×rn, 1×rn, rm×1, 1×1]).
 */
function driver(cfg: GemmConfig, tiles: readonly number[]): Fn {
  const f = new Fn("gemm", 11);
  const [a, w, bias, out, , N, Kp, m0, m1, n0, n1] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const kc0 = f.local(I32), klB = f.local(I32), mb0 = f.local(I32), mbe = f.local(I32);
  const n = f.local(I32), m = f.local(I32), kpB = f.local(I32), nB = f.local(I32), t = f.local(I32);
  const { rm, rn, kc, mc } = cfg;
  f.local_get(Kp).i32_const(4).i32_mul().local_set(kpB);
  f.local_get(N).i32_const(4).i32_mul().local_set(nB);
  const minInto = (dst: number, x: () => void, y: () => void) => {
    x(), f.local_set(t);
    y(), f.local_set(dst);
    f.local_get(t).local_get(dst).local_get(t).local_get(dst).i32_lt_s().select().local_set(dst);
  };
  const callTile = (index: number) => {
    f.local_get(a).local_get(m).local_get(kpB).i32_mul().i32_add().local_get(kc0).i32_const(4).i32_mul().i32_add();
    f.local_get(w).local_get(n).local_get(kpB).i32_mul().i32_add().local_get(kc0).i32_const(4).i32_mul().i32_add();
    f.local_get(out).local_get(m).local_get(nB).i32_mul().i32_add().local_get(n).i32_const(4).i32_mul().i32_add();
    // bias ? bias + 4n : 0
    f.local_get(bias).local_get(n).i32_const(4).i32_mul().i32_add().i32_const(0).local_get(bias).select();
    f.local_get(klB).local_get(kpB).local_get(nB).local_get(kc0).i32_eqz().call(index);
  };
  const rowsOf = (full: number, one: number) => {
    f.for(m, () => f.local_get(mb0), () => f.local_get(mbe).i32_const(rm - 1).i32_sub(), rm, () => callTile(full));
    f.for(m, null, () => f.local_get(mbe), 1, () => callTile(one));
  };
  f.for(kc0, () => f.i32_const(0), () => f.local_get(Kp), kc, () => {
    minInto(klB, () => f.i32_const(kc), () => f.local_get(Kp).local_get(kc0).i32_sub());
    f.local_get(klB).i32_const(4).i32_mul().local_set(klB);
    f.for(mb0, () => f.local_get(m0), () => f.local_get(m1), mc, () => {
      minInto(mbe, () => f.local_get(mb0).i32_const(mc).i32_add(), () => f.local_get(m1));
      f.for(n, () => f.local_get(n0), () => f.local_get(n1).i32_const(rn - 1).i32_sub(), rn, () => {
        rowsOf(tiles[0]!, tiles[1]!);
      });
      f.for(n, null, () => f.local_get(n1), 1, () => rowsOf(tiles[2]!, tiles[3]!));
    });
  });
  return f;
}

/** run(thread): claims and computes chunks of the job in the control block until none are left. */
function runner(cfg: GemmConfig, at: (name: string) => number): Fn {
  const f = new Fn("run", 1);
  const c = f.local(I32), idx = f.local(I32), total = f.local(I32), count = f.local(I32);
  const m0 = f.local(I32), n0 = f.local(I32);
  const slot = (s: number) => f.i32_const(0).i32_load(4 * s);
  /** min(start + step, limit): pushes x, y, x, y, (x < y) and selects. */
  const end = (start: number, step: number, limit: number) => {
    for (let i = 0; i < 2; i++) f.local_get(start), slot(step), f.i32_add(), slot(limit);
    f.i32_lt_s().select();
  };
  /** A GEMM chunk: rows [m0, m1) × columns [n0, n1) of the job, then `fn(…args, m0, m1, n0, n1)`. */
  const gemmChunkOf = (fn: string, args: readonly number[]) => () => {
    slot(CTL.M_COUNT).local_set(count);
    f.local_get(idx).local_get(count).i32_rem_u();
    slot(CTL.M_STEP).i32_mul().local_set(m0);
    f.local_get(idx).local_get(count).i32_div_u();
    slot(CTL.N_STEP).i32_mul().local_set(n0);
    for (const s of args) slot(s);
    f.local_get(m0), end(m0, CTL.M_STEP, CTL.M);
    f.local_get(n0), end(n0, CTL.N_STEP, CTL.N);
    f.call(at(fn));
  };
  const gemmChunk = gemmChunkOf("gemm", [CTL.A, CTL.W, CTL.BIAS, CTL.OUT, CTL.M, CTL.N, CTL.KP]);
  const nnChunk = gemmChunkOf("nn", [CTL.A, CTL.W, CTL.BIAS, CTL.OUT, CTL.KP, CTL.LDB, CTL.LDO]);
  const ntChunk = gemmChunkOf("nt", [CTL.A, CTL.W, CTL.BIAS, CTL.OUT, CTL.LDB, CTL.M, CTL.N, CTL.KP, CTL.LDO]);
  const winogradChunk = () => f.local_get(idx).local_get(0).call(at("wino"));
  const winograd4Chunk = () => f.local_get(idx).local_get(0).call(at("wino4"));
  const winogradPadChunk = () => f.local_get(idx).call(at("wino_pad"));
  const packChunk = () => {
    f.local_get(idx), slot(CTL.M_STEP), f.i32_mul().local_set(m0); // first panel; panels are 32·K bytes
    const offset = () => (f.local_get(m0), slot(CTL.KP), f.i32_mul().i32_const(32).i32_mul());
    slot(CTL.A), offset(), f.i32_add();
    slot(CTL.W), offset(), f.i32_add();
    end(m0, CTL.M_STEP, CTL.M), f.local_get(m0).i32_sub();
    slot(CTL.KP), f.call(at("pack8"));
  };
  // GroupNorm: chunk = channel; A = x, M = floats per channel, W = stats or affine, KP = silu
  const normArgs = () => (slot(CTL.A), slot(CTL.M), slot(CTL.W), f.local_get(idx));
  const statsChunk = () => (normArgs(), f.call(at("gn_stats")));
  const applyChunk = () => (normArgs(), slot(CTL.KP), f.call(at("gn_apply")));
  const attentionChunk = () => {
    slot(CTL.JOBS).local_get(idx).i32_const(JOB_BYTES).i32_mul().i32_add();
    slot(CTL.SCRATCH).local_get(0).i32_const(scratchBytes(cfg.attention)).i32_mul().i32_add();
    f.call(at("attn_job"));
  };
  f.block(() =>
    f.loop(() => {
      f.i32_const(0).i32_atomic_load(4 * CTL.CLAIM).local_set(c);
      f.local_get(c).i32_const(0xffff).i32_and().local_set(idx);
      slot(CTL.TOTAL).local_set(total);
      f.local_get(idx).local_get(total).i32_ge_s().br_if(1);
      // claim chunk idx; on a race, read the claim word again
      f.i32_const(0).local_get(c).local_get(c).i32_const(1).i32_add().i32_atomic_rmw_cmpxchg(4 * CTL.CLAIM);
      f.local_get(c).i32_ne().br_if(0);
      // test the kinds in JOB's order after the GEMM, which is the fall-through
      const chunks: Record<keyof typeof JOB, () => void> = {
        gemm: gemmChunk,
        attention: attentionChunk,
        nn: nnChunk,
        wino: winogradChunk,
        wino4: winograd4Chunk,
        nt: ntChunk,
        gnStats: statsChunk,
        gnApply: applyChunk,
        winoPad: winogradPadChunk,
        pack8: packChunk,
      };
      const kinds = (Object.keys(JOB) as (keyof typeof JOB)[]).filter((k) => k !== "gemm");
      kinds.reduceRight<() => void>(
        (otherwise, k) => () => slot(CTL.KIND).i32_const(JOB[k]).i32_eq().if(chunks[k], otherwise),
        chunks.gemm,
      )();
      // done += 1; the last chunk wakes the waiting caller
      f.i32_const(0).i32_const(1).i32_atomic_rmw_add(4 * CTL.DONE).i32_const(1).i32_add().local_get(total).i32_eq();
      f.if(() => f.i32_const(4 * CTL.DONE).i32_const(1).memory_atomic_notify().drop());
      f.br(0);
    })
  );
  return f;
}

/**
 * The module bytes for one configuration. Exports the GEMM (tile_*, gemm), the attention kernels
 * (attention_module.ts) and, when shared, run.
 */
export function gemmModule(cfg: GemmConfig): Uint8Array<ArrayBuffer> {
  const { rm, rn, relaxed } = cfg;
  const shapes = [[rm, rn], [1, rn], [rm, 1], [1, 1]] as const;
  const names = [
    ...shapes.map(([r, c]) => `tile_${r}x${c}`),
    "gemm",
    "nn_tile",
    "nn",
    "nn_m",
    "wino",
    "wino_u",
    "wino4",
    "wino_pad",
    "nt_tile",
    "nt",
    "gn_stats",
    "gn_apply",
    "pack8",
    "transpose4",
    ...attentionNames(cfg.attention),
    "run",
  ];
  const at = (name: string) => names.indexOf(name);
  const fns = [
    ...shapes.map(([r, c]) => tile(r, c, relaxed)),
    driver(cfg, [0, 1, 2, 3]),
    nnTile(relaxed),
    nnDriver(at, false),
    nnDriver(at, true),
    winogradJob(at("nn_m")),
    winogradWeights(NN.mr),
    winograd4Job(at("nn_m")),
    winogradPad(),
    ntTile(relaxed),
    ntDriver(at),
    gnStats(),
    gnApply(),
    pack8(),
    transpose4(),
  ];
  fns.push(...attentionFns(cfg.attention, relaxed, CTL, at));
  if (cfg.shared) fns.push(runner(cfg, at));
  return encodeModule(fns, { initial: cfg.initialPages, maximum: cfg.maximumPages, shared: cfg.shared });
}
