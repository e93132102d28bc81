/**
 * @file The command-line fuzzer: seeded hostile situations around `varc` commands and the oracle they
 * are judged by.
 *
 * Seeds are the shipped glyph models (`examples/glyphs/`) and the tiny fixture model
 * (`examples/var_tiny_a.var.ts`, `tests/fixtures/var_tiny_a/`), and for `pack` an image set made by
 * `varc sample`. A case is one `varc` command line with files made for it in a case folder; mutation
 * classes:
 *
 * - `special-files`: the spec, an imported module, a checkpoint, the tokens file, the labels file or the
 *   image set is a device, a FIFO, a socket, a folder, a /proc file, a 1 TiB sparse file, a dangling or
 *   looping symlink, directly, through a symlink chain or through a symlinked folder;
 * - `output-paths`: `--out` is an existing file, a path under a file, a read-only folder, a device, a
 *   FIFO, a socket, a folder where a file is expected, a looping or dangling symlink, or a final output
 *   name inside the folder is taken by a folder or a FIFO (plus writable controls that must succeed);
 * - `atomic-writes`: the command runs in its own process under `ulimit -f K` with SIGXFSZ ignored, so a
 *   write fails mid-way as on a full disk;
 * - `non-finite`: NaN, ±Infinity or huge finite values planted in a tensor of a checkpoint;
 * - `internal-errors`: specs that are not complete VAR models (entries missing, swapped or faked,
 *   metadata dropped or corrupted), and exceptions thrown from inside a run (fault injection);
 * - `flags`: out-of-range, malformed, repeated, unknown and missing flag values.
 *
 * Cases run `main()` of `cli/varc.ts` in this thread with the console captured; only `atomic-writes`
 * cases spawn a process. The oracle: the exit code is one the case allows (1 for a user error, 2 only
 * when an injected exception fired, 0 only where the situation allows success); stderr is short, has
 * no raw control character, no stack trace, no JavaScript engine message and exactly one error line,
 * naming the path, flag, entry or field at fault; output-path errors come before any input is read; no
 * temporary file is left in the case folder, and a failed run leaves it as it was (a run cut by the
 * size limit may leave only complete files, equal to an unlimited run's). An exit 0 needs complete,
 * finite outputs; with a planted NaN or ±Infinity they must equal the clean checkpoint's (the value was
 * not read), with a planted finite value a rerun with --check-numerics must pass (nothing overflowed),
 * and a partial VAR model must write what the complete model writes.
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import { decode as decodePng } from "fast-png";
import * as esbuild from "esbuild";
import { main } from "../../cli/varc.ts";
import { MAX_LINE } from "../../cli/common.ts";
import { parseSafetensors } from "../../runtime/safetensors.ts";
import { escapeUnprintable } from "../../runtime/text.ts";
import { type Artifact, describeError, type Outcome, Rng, ROOT } from "./common.ts";

/** Mutation classes, for reports. */
export const CLI_CLASSES = [
  "special-files",
  "output-paths",
  "atomic-writes",
  "non-finite",
  "internal-errors",
  "flags",
] as const;

type Cmd = "compile" | "bundle" | "explain" | "generate" | "decode" | "forward" | "sample" | "pack";

/** A model with its checkpoints and a token pyramid (repository paths). */
interface ModelSeed {
  readonly name: string;
  readonly spec: string;
  readonly var: string;
  readonly vae: string;
  readonly tokens: string;
  readonly tokensName: string;
  /** Labels for the two rows of the token pyramid (forward). */
  readonly labels2: string;
  readonly classes: number;
  readonly vocab: number;
  /** The `varConfig` options of the spec, as source text (specs built from the library's pieces). */
  readonly config: string;
  readonly weight: number;
}

const GLYPHS = "examples/glyphs";
const GLYPH_CONFIG =
  "depth: 4, width: 128, classes: 36, vocab: 512, cvae: 16, schedule: [1, 2, 3, 4, 6, 8], vaeCh: 32, " +
  "vaeChMult: [1, 2, 2], vaeResBlocks: 1";
const MODELS: readonly ModelSeed[] = [
  {
    name: "glyphs-standard",
    spec: `${GLYPHS}/standard.var.ts`,
    var: `${GLYPHS}/var_standard.safetensors`,
    vae: `${GLYPHS}/vae.safetensors`,
    tokens: "tests/fixtures/glyphs_standard/reference.safetensors",
    tokensName: "tf.idx_BL",
    labels2: "3,17",
    classes: 36,
    vocab: 512,
    config: `{ name: "partial", heads: 2, ${GLYPH_CONFIG} }`,
    weight: 5,
  },
  {
    name: "glyphs-bounded",
    spec: `${GLYPHS}/bounded.var.ts`,
    var: `${GLYPHS}/var_bounded.safetensors`,
    vae: `${GLYPHS}/vae.safetensors`,
    tokens: "tests/fixtures/glyphs_standard/reference.safetensors",
    tokensName: "tf.idx_BL",
    labels2: "3,17",
    classes: 36,
    vocab: 512,
    config: `{ name: "partial", heads: 32, tauMax: 0.5, ${GLYPH_CONFIG} }`,
    weight: 3,
  },
  {
    name: "tiny",
    spec: "examples/var_tiny_a.var.ts",
    var: "tests/fixtures/var_tiny_a/var.safetensors",
    vae: "tests/fixtures/var_tiny_a/vae.safetensors",
    tokens: "tests/fixtures/var_tiny_a/reference.safetensors",
    tokensName: "tf.idx_BL",
    labels2: "3,7",
    classes: 10,
    vocab: 256,
    config:
      `{ name: "partial", depth: 2, width: 128, heads: 2, classes: 10, vocab: 256, cvae: 8, vaeCh: 32, schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16] }`,
    weight: 1,
  },
];

/**
 * Something made in the case folder before the run. Paths and link targets may start with `@case`
 * (the case folder), `@repo` (the repository), `@ro` (a folder this process cannot write in) or `@set`
 * (an image set of `varc sample`, made once per thread).
 */
export type Setup =
  | { readonly kind: "file"; readonly path: string; readonly text: string; readonly mode?: number }
  | { readonly kind: "dir"; readonly path: string }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string }
  | { readonly kind: "fifo" | "socket"; readonly path: string }
  | { readonly kind: "sparse"; readonly path: string; readonly size: number }
  | {
    /** A copy of checkpoint `from` with `value` written into elements of one F32 tensor. */
    readonly kind: "plant";
    readonly path: string;
    readonly from: string;
    /** Picks the tensor (modulo the number of F32 tensors, sorted by name) and the elements. */
    readonly pick: number;
    readonly count: "one" | "few" | "all";
    readonly value: string;
  };

/** An exception thrown from inside a run: the `call`-th call of `at` throws FAULT_VALUES[`value`]. */
export interface Fault {
  readonly at: "performance.now" | "JSON.stringify" | "TextEncoder.encode";
  readonly call: number;
  readonly value: number;
}

/** What the oracle requires of a case beyond the checks every case gets. */
export interface Expect {
  /** Exit codes the case may end with (2 only for injected faults, decided when the fault fires). */
  readonly codes: readonly number[];
  /**
   * With exit 1, an `error:` line holds one of these (as printed, i.e. escaped); `path:P` stands for the
   * base name of path P once its placeholders are resolved.
   */
  readonly names?: readonly string[];
  /** With exit 1, the error line matches this (a RegExp source, case-insensitive). */
  readonly says?: string;
  /** The failure comes from checking output paths: no input (or no checkpoint) may be opened. */
  readonly beforeInputs?: "all" | "checkpoints";
}

/** One generated command-line case. */
export interface CliMutant {
  readonly cls: string;
  /** The model seed. */
  readonly seed: string;
  /** The situation, for reports. */
  readonly what: string;
  readonly command: Cmd;
  /** Arguments after the command (placeholders as in Setup). */
  readonly args: readonly string[];
  readonly setup: readonly Setup[];
  readonly expect: Expect;
  /** `atomic-writes`: run in a process under this file-size limit (KiB). */
  readonly limitKiB?: number;
  readonly fault?: Fault;
  /**
   * `non-finite`: an exit 0 must give what the clean checkpoint gives (a planted NaN or ±Infinity was not
   * read), or, for a planted finite value, pass a rerun with --check-numerics (nothing overflowed).
   */
  readonly clean?: { readonly flag: string; readonly file: string; readonly finite: boolean };
  /** `internal-errors`: an exit 0 must write what the complete model (this spec) writes. */
  readonly same?: string;
}

/** Seeds and shared state of the command-line fuzzer (one per thread). */
export interface CliCorpus {
  readonly tmpDir: string;
  /** Checkpoint bytes by repository path (for planting). */
  readonly bytes: Map<string, Uint8Array>;
  /** Outputs of unlimited runs with the seed's own files, by command line (atomic-writes, non-finite). */
  readonly references: Map<string, Reference>;
  /** A folder this process cannot create anything in, or why there is none. */
  readOnly?: { dir: string } | { none: string };
  /** `deno cache` of the CLI done (spawned runs must not write caches under the size limit). */
  cached?: boolean;
  /** The image set `pack` reads. */
  set?: string;
}

/** What a run with the seed's own files wrote (by file name) and printed. */
interface Reference {
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly out: string;
}

/** The command-line fuzzer's state; case folders go in a folder of this thread under `tmpDir` (removed by the caller). */
export function loadCliCorpus(tmpDir: string): CliCorpus {
  return { tmpDir: join(tmpDir, `cli-${crypto.randomUUID().slice(0, 8)}`), bytes: new Map(), references: new Map() };
}

// ── generating cases ─────────────────────────────────────────────────────────

const HOSTILE_NAMES = [
  "a b",
  'quo"te',
  "new\nline",
  "esc\u001b[2Jcleared",
  "bidi\u202eexe",
  "é🦕",
  "tab\tx",
  "x".repeat(180),
  "semi;colon",
  "back\\slash",
  "`tick`",
  "$(echo)",
  "\u2028sep",
  "del\u007f",
];

function nameOf(rng: Rng, plain: string, p = 0.3): string {
  return rng.chance(p)
    ? `${rng.pick(HOSTILE_NAMES)}${plain.includes(".") ? plain.slice(plain.indexOf(".")) : ""}`
    : plain;
}

function pickModel(rng: Rng, glyphsOnly = false): ModelSeed {
  const ms = glyphsOnly ? MODELS.filter((m) => m.name.startsWith("glyphs")) : MODELS;
  return rng.weighted(ms.map((m) => [m.weight, m] as const));
}

const repo = (p: string) => `@repo/${p}`;

/** A working command line of `cmd` on `m` writing to `out` (a folder, or a file for decode/forward). */
function baseArgs(m: ModelSeed, cmd: Cmd, out: string): string[] {
  const spec = repo(m.spec);
  switch (cmd) {
    case "compile":
    case "bundle":
      return [spec, "--out", out];
    case "explain":
      return [spec];
    case "generate":
      return [spec, "--var", repo(m.var), "--vae", repo(m.vae), "--labels", "3", "--out", out];
    case "decode":
      return [spec, "--vae", repo(m.vae), "--tokens", repo(m.tokens), "--tokens-name", m.tokensName, "--out", out];
    case "forward":
      return [
        ...[spec, "--var", repo(m.var), "--vae", repo(m.vae), "--labels", m.labels2],
        ...["--tokens", repo(m.tokens), "--tokens-name", m.tokensName, "--out", out],
      ];
    case "sample":
      return [spec, "--var", repo(m.var), "--vae", repo(m.vae), "--per-class", "1", "--classes", "3", "--out", out];
    case "pack":
      return ["@set", "--out", out];
  }
}

const FILE_OUT: ReadonlySet<Cmd> = new Set(["decode", "forward", "pack"]);
const defaultOut = (cmd: Cmd) =>
  cmd === "pack" ? "@case/out.npz" : FILE_OUT.has(cmd) ? "@case/out.safetensors" : "@case/out";

/** `args` with the value of `flag` replaced (or appended when absent). */
function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const i = args.indexOf(flag);
  return i < 0 ? [...args, flag, value] : args.map((a, j) => (j === i + 1 ? value : a));
}

/** How a printed path or name appears in messages: escaped as the CLI prints text. */
export function shown(text: string): string {
  return escapeUnprintable(text, "\t");
}

const SPECIAL_KINDS = [
  "dev-zero",
  "dev-null",
  "dev-urandom",
  "dev-full",
  "fifo",
  "socket",
  "dir",
  "proc",
  "sparse",
  "dangling",
  "loop",
] as const;
type SpecialKind = (typeof SPECIAL_KINDS)[number];

/** The special thing of `kind`: its path and what makes it. */
function specialThing(kind: SpecialKind, rng: Rng, ext: string): { path: string; setup: Setup[] } {
  const dev = {
    "dev-zero": "/dev/zero",
    "dev-null": "/dev/null",
    "dev-urandom": "/dev/urandom",
    "dev-full": "/dev/full",
  };
  switch (kind) {
    case "dev-zero":
    case "dev-null":
    case "dev-urandom":
    case "dev-full":
      return { path: dev[kind], setup: [] };
    case "fifo":
      return { path: `@case/things/fifo${ext}`, setup: [{ kind: "fifo", path: `@case/things/fifo${ext}` }] };
    case "socket":
      return { path: "@case/things/s", setup: [{ kind: "socket", path: "@case/things/s" }] };
    case "dir":
      return {
        path: `@case/things/dir${ext}`,
        setup: [{ kind: "file", path: `@case/things/dir${ext}/inside${ext}`, text: "x" }],
      };
    case "proc":
      return { path: rng.pick(["/proc/self/status", "/proc/version", "/proc/self/maps"]), setup: [] };
    case "sparse": {
      const path = `@case/things/huge${ext}`;
      return { path, setup: [{ kind: "sparse", path, size: rng.pick([2 ** 40, 2 ** 42]) }] };
    }
    case "dangling":
      return {
        path: `@case/things/dangling${ext}`,
        setup: [{ kind: "symlink", path: `@case/things/dangling${ext}`, target: "@case/nowhere/x" }],
      };
    case "loop":
      return {
        path: `@case/things/loop1${ext}`,
        setup: [
          { kind: "dir", path: "@case/things" },
          { kind: "symlink", path: `@case/things/loop1${ext}`, target: `loop2${ext}` },
          { kind: "symlink", path: `@case/things/loop2${ext}`, target: `loop1${ext}` },
        ],
      };
  }
}

/** Reaches `thing` directly, through a symlink, a chain of symlinks or a symlinked folder. */
function reach(
  thing: string,
  rng: Rng,
  name: string,
  direct = true,
): { path: string; setup: Setup[]; via: string } {
  let via = rng.weighted([[3, "direct"], [3, "link"], [2, "chain"], [1, "folder-link"]] as const);
  if (via === "direct" && !direct) via = "link";
  if (via === "direct") return { path: thing, setup: [], via };
  if (via === "folder-link" && thing.startsWith("@case/things/")) {
    return {
      path: `@case/ld/${thing.slice("@case/things/".length)}`,
      setup: [{ kind: "symlink", path: "@case/ld", target: "things" }],
      via,
    };
  }
  const n = via === "chain" ? rng.between(2, 4) : 1;
  const links: Setup[] = [];
  let target = thing;
  for (let i = n - 1; i >= 0; i--) {
    const path = i === 0 ? `@case/${name}` : `@case/chain${i}`;
    // Relative targets where the target lies in the case folder, sometimes.
    const t = target.startsWith("@case/") && rng.chance(0.5) ? target.slice("@case/".length) : target;
    links.unshift({ kind: "symlink", path, target: t });
    target = path;
  }
  return { path: `@case/${name}`, setup: links, via: via === "folder-link" ? "link" : via };
}

function makeSpecialFiles(rng: Rng): CliMutant {
  const role = rng.weighted(
    [[3, "spec"], [2, "import"], [2, "var"], [2, "vae"], [2, "tokens"], [1, "labels-file"], [1, "set"]] as const,
  );
  const m = pickModel(rng, role === "set" || role === "labels-file");
  const all: readonly (readonly [number, Cmd])[] = [
    [2, "generate"],
    [1, "decode"],
    [1, "forward"],
    [2, "compile"],
    [1, "bundle"],
    [2, "explain"],
    [1, "sample"],
  ];
  const cmds: Record<typeof role, readonly (readonly [number, Cmd])[]> = {
    spec: all,
    import: all,
    var: [[3, "generate"], [2, "forward"], [1, "explain"], [1, "compile"], [1, "sample"]],
    vae: [[3, "generate"], [2, "forward"], [2, "decode"], [1, "explain"], [1, "sample"]],
    tokens: [[1, "decode"], [1, "forward"]],
    "labels-file": [[1, "sample"]],
    set: [[1, "pack"]],
  };
  const cmd = rng.weighted(cmds[role]);
  let args = baseArgs(m, cmd, defaultOut(cmd));
  const control = (role === "var" || role === "vae" || role === "tokens") && rng.chance(0.08);
  const ext = role === "spec" || role === "import" ? ".var.ts" : role === "set" ? "" : ".safetensors";
  const kind = rng.pick(SPECIAL_KINDS);
  const thing = control ? { path: repo(m[role as "var" | "vae" | "tokens"]), setup: [] } : specialThing(kind, rng, ext);
  const linkName = role === "import" ? `mod${ext}` : nameOf(rng, `input${ext}`, kind === "socket" ? 0 : 0.3);
  // An import names a file beside the importer: absolute things are reached through a link.
  const r = reach(thing.path, rng, linkName, role !== "import" || thing.path.startsWith("@case/"));
  const setup = [...thing.setup, ...r.setup];
  const names = [`path:${r.path}`];
  if (role === "import") {
    const rel = relative("@case", r.path);
    setup.push({
      kind: "file",
      path: "@case/importer.var.ts",
      text: `import m from "./${rel}";\nexport default m;\n`,
    });
    args[0] = "@case/importer.var.ts";
    names.push("importer.var.ts");
  } else if (role === "spec" || role === "set") {
    args[0] = r.path;
  } else if (role === "labels-file") {
    args = [...args.slice(0, args.indexOf("--per-class")), ...args.slice(args.indexOf("--classes") + 2)];
    args.push("--labels-file", r.path);
  } else {
    const flag = `--${role}`;
    args = withFlag(args, flag, r.path);
  }
  return {
    cls: "special-files",
    seed: m.name,
    what: control ? `${role} through a ${r.via} of symlinks (control)` : `${role} is ${kind} (${r.via})`,
    command: cmd,
    args,
    setup,
    expect: control ? { codes: [0] } : { codes: [1], names },
  };
}

type OutSituation =
  | "file"
  | "under-file"
  | "read-only"
  | "read-only-missing"
  | "device"
  | "fifo"
  | "socket"
  | "link-to-file"
  | "link-to-folder"
  | "dangling"
  | "loop"
  | "folder"
  | "final-folder"
  | "final-fifo"
  | "missing-nested"
  | "existing"
  | "old-outputs"
  | "link-to-dir"
  | "read-only-file";

/** Final file names a command writes into its output folder. */
function finalNames(cmd: Cmd, labels: number): string[] {
  if (cmd === "compile") return ["model.js", "model.d.ts", "model.src.ts", "report.json", "report.md"];
  if (cmd === "sample") return ["000000_c3.png", "index-0-of-1.jsonl"];
  if (cmd === "bundle") return ["model.js", "model.d.ts"];
  if (cmd === "generate") return [...Array.from({ length: labels }, (_, i) => `image_${i}.png`), "outputs.safetensors"];
  return [];
}

function makeOutputPaths(rng: Rng): CliMutant {
  const m = pickModel(rng, true);
  const cmd = rng.weighted(
    [[2, "compile"], [2, "bundle"], [3, "generate"], [2, "decode"], [2, "forward"], [2, "sample"], [
      1,
      "pack",
    ]] as const,
  );
  const fileOut = FILE_OUT.has(cmd);
  const bad: OutSituation[] = fileOut
    ? [
      "folder",
      "under-file",
      "read-only",
      "read-only-missing",
      "device",
      "fifo",
      "socket",
      "link-to-folder",
      "loop",
      "dangling",
    ]
    : [
      "file",
      "under-file",
      "read-only",
      "read-only-missing",
      "device",
      "fifo",
      "socket",
      "link-to-file",
      "dangling",
      "loop",
      "final-folder",
      "final-fifo",
    ];
  const good: OutSituation[] = fileOut
    ? ["existing", "missing-nested", "read-only-file"]
    : ["missing-nested", "existing", "old-outputs", "link-to-dir"];
  const situation = rng.chance(0.12) ? rng.pick(good) : rng.pick(bad);
  const leaf = nameOf(rng, cmd === "pack" ? "o.npz" : fileOut ? "o.safetensors" : "o");
  const setup: Setup[] = [];
  let out: string;
  switch (situation) {
    case "file":
      out = `@case/${leaf}`;
      setup.push({ kind: "file", path: out, text: "keep me\n" });
      break;
    case "under-file":
      setup.push({ kind: "file", path: "@case/f", text: "keep me\n" });
      out = `@case/f/${rng.chance(0.5) ? leaf : `sub/${leaf}`}`;
      break;
    case "read-only":
      out = fileOut ? `@ro/${leaf}` : "@ro";
      break;
    case "read-only-missing":
      out = `@ro/new/${leaf}`;
      break;
    case "device":
      out = rng.pick(["/dev/null", "/dev/full", "/dev/zero"]);
      break;
    case "fifo":
      out = `@case/${leaf}`;
      setup.push({ kind: "fifo", path: out });
      break;
    case "socket":
      out = "@case/s";
      setup.push({ kind: "socket", path: out });
      break;
    case "link-to-file":
      setup.push({ kind: "file", path: "@case/f", text: "keep me\n" });
      out = `@case/${leaf}`;
      setup.push({ kind: "symlink", path: out, target: "f" });
      break;
    case "link-to-folder":
    case "link-to-dir":
      setup.push({ kind: "dir", path: "@case/d" });
      out = `@case/${leaf}`;
      setup.push({ kind: "symlink", path: out, target: "d" });
      break;
    case "dangling":
      out = `@case/${leaf}`;
      setup.push({ kind: "symlink", path: out, target: "nowhere/x" });
      break;
    case "loop":
      out = `@case/${leaf}`;
      setup.push({ kind: "symlink", path: out, target: "loop2" }, {
        kind: "symlink",
        path: "@case/loop2",
        target: leaf,
      });
      break;
    case "folder":
      out = `@case/${leaf}`;
      setup.push({ kind: "dir", path: out });
      break;
    case "final-folder":
    case "final-fifo": {
      out = `@case/${leaf}`;
      const final = rng.pick(finalNames(cmd, 1));
      setup.push(
        situation === "final-folder"
          ? { kind: "file", path: `${out}/${final}/inside`, text: "keep me\n" }
          : { kind: "fifo", path: `${out}/${final}` },
      );
      break;
    }
    case "missing-nested":
      out = `@case/a/b/${leaf}`;
      break;
    case "existing":
      out = `@case/${leaf}`;
      setup.push(fileOut ? { kind: "file", path: out, text: "old\n" } : { kind: "dir", path: out });
      break;
    case "old-outputs":
      out = `@case/${leaf}`;
      for (const f of finalNames(cmd, 1)) setup.push({ kind: "file", path: `${out}/${f}`, text: "old\n" });
      break; // sample resumes from its index, and refuses one that is not its own
    case "read-only-file":
      out = `@case/${leaf}`;
      setup.push({ kind: "file", path: out, text: "old\n", mode: 0o444 });
      break;
  }
  const ok = good.includes(situation) && !(cmd === "sample" && situation === "old-outputs");
  const args = baseArgs(m, cmd, out);
  const eq = rng.chance(0.2);
  return {
    cls: "output-paths",
    seed: m.name,
    what: `${fileOut ? "file" : "folder"} --out: ${situation}`,
    command: cmd,
    args: eq
      ? [...args.slice(0, args.indexOf("--out")), `--out=${out}`, ...args.slice(args.indexOf("--out") + 2)]
      : args,
    setup,
    // sample names its images after the model's classes: it reads the spec first
    expect: ok ? { codes: [0] } : situation === "old-outputs" ? { codes: [1], names: ["index-0-of-1.jsonl"] } : {
      codes: [1],
      names: [`path:${out}`],
      beforeInputs: cmd === "sample" && situation.startsWith("final-") ? "checkpoints" : "all",
    },
  };
}

/** Largest file of each command's outputs on the glyph models, in KiB (limits are drawn up to a bit more). */
const OUTPUT_KIB: Readonly<Record<Cmd, number>> = {
  compile: 420,
  bundle: 240,
  generate: 20,
  decode: 34,
  forward: 540,
  explain: 1,
  sample: 4,
  pack: 4,
};

function makeAtomicWrites(rng: Rng): CliMutant {
  const m = pickModel(rng, true);
  const cmd = rng.weighted(
    [[2, "compile"], [1, "bundle"], [3, "generate"], [2, "decode"], [2, "forward"], [2, "sample"], [
      1,
      "pack",
    ]] as const,
  );
  const limitKiB = rng.chance(0.4) ? rng.between(1, 16) : rng.between(1, OUTPUT_KIB[cmd] + 8);
  return {
    cls: "atomic-writes",
    seed: m.name,
    what: `${cmd} under ulimit -f ${limitKiB}`,
    command: cmd,
    args: baseArgs(m, cmd, defaultOut(cmd)),
    setup: [],
    expect: { codes: [0, 1], says: "^error: writing .+ failed: File too large" },
    limitKiB,
  };
}

const PLANT_VALUES = ["NaN", "Infinity", "-Infinity", "3.4e38", "-3.4e38", "1e30", "1e20", "-1e15"];

function makeNonFinite(rng: Rng): CliMutant {
  const m = pickModel(rng);
  const cmd = rng.weighted(
    [[4, "generate"], [2, "decode"], [2, "forward"], [1, "explain"], [1, "compile"], [1, "sample"]] as const,
  );
  const source: "var" | "vae" = cmd === "decode"
    ? "vae"
    : cmd === "explain" || cmd === "compile"
    ? "var"
    : rng.pick(["var", "vae"] as const);
  const file = `@case/${source}.safetensors`;
  let args = baseArgs(m, cmd, defaultOut(cmd));
  if (cmd === "explain" || cmd === "compile") args.push("--var", repo(m.var));
  args = withFlag(args, `--${source}`, file);
  const value = rng.pick(PLANT_VALUES);
  const count = rng.weighted([[5, "one"], [3, "few"], [2, "all"]] as const);
  return {
    cls: "non-finite",
    seed: m.name,
    what: `${cmd}: ${value} in ${
      count === "one" ? "one element" : count === "few" ? "a few elements" : "all"
    } of a ${source} tensor`,
    command: cmd,
    args,
    setup: [{ kind: "plant", path: file, from: repo(m[source]), pick: rng.u32(), count, value }],
    expect: { codes: [0, 1], says: "non-finite|NaN|Infinity|numerics" },
    clean: { flag: `--${source}`, file: repo(m[source]), finite: Number.isFinite(Number(value)) },
  };
}

/** Entries of a VAR spec built from the library's pieces, by name: source text. */
function varEntries(m: ModelSeed): Map<string, string> {
  const schedule = JSON.parse(/schedule: (\[[^\]]*\])/.exec(m.config)![1]!) as number[];
  const S = schedule.length;
  const e = new Map<string, string>([
    ["forward", "forwardEntry(c, tanhGeluFfn, blockCausal(c.schedule))"],
    ["tokens_to_fhat", `{ fhat: fhatFromTokens(input("idx_BL", [B, c.tokens], "i32"), c) }`],
    ["decode", `{ img: toUnit(decoder(input("fhat", [B, c.cvae, n, n]), c)) }`],
  ]);
  for (let s = 0; s < S; s++) e.set(`step_${s}`, `stepEntry(${s}, c, tanhGeluFfn, ${S})`);
  for (let s = 0; s < S; s++) e.set(`fhat_${s}`, `fhatEntry(${s}, c)`);
  return e;
}

/** Entries that look right by name but are not: wrong inputs, dtypes, shapes or output names. */
const FAKE_ENTRIES: Readonly<Record<string, readonly string[]>> = {
  decode: [
    `{ img: input("fhat", [B, 3, 5, 5]) }`,
    `{ img: input("z", [B, c.cvae, n, n]) }`,
    `{ image: toUnit(decoder(input("fhat", [B, c.cvae, n, n]), c)) }`,
    `{ img: input("fhat", [B, c.cvae, n, n], "i32") }`,
  ],
  tokens_to_fhat: [
    `{ fhat: input("idx_BL", [B, c.tokens]) }`,
    `{ f: fhatFromTokens(input("idx_BL", [B, c.tokens], "i32"), c) }`,
    `{ fhat: fhatFromTokens(input("idx", [B, c.tokens], "i32"), c) }`,
    `{ fhat: input("idx_BL", [B, 7], "i32") }`,
  ],
  forward: [
    `{ logits_BLV: input("labels", [B], "i32") }`,
    `{ logits: input("idx_BL", [B, c.tokens, c.vocab]) }`,
    `{ logits_BLV: input("idx_BL", [B, c.tokens, 3]) }`,
  ],
  step: [
    `{ logits: input("labels", [B], "i32") }`,
    `{ logit: input("x_words", [B, 1, c.vocab]) }`,
    `{ logits: input("labels", [B, 1, 3]) }`,
  ],
  fhat: [
    `{ fhat: input("idx", [B, 1], "i32") }`,
    `{ f_hat: input("fhat", [B, c.cvae, n, n]) }`,
    `{ fhat: input("fhat", [B, c.cvae, n, n]), x_words: input("idx", [B, 3]) }`,
  ],
};

const META_FIELDS = [
  "schedule",
  "classes",
  "vocab",
  "tokens",
  "cvae",
  "depth",
  "width",
  "heads",
  "headDim",
  "imageSize",
  "phiIndex",
  "tauMax",
  "classNames",
  "window",
  "family",
];
const META_VALUES: Readonly<Record<string, readonly string[]>> = {
  schedule: ["[]", "[0]", "[1, 2.5]", '"1,2"', "[-1]", "[1000000000]", "[1, 2]", "[2, 1]", "[[1]]"],
  classes: ["0", "-1", "1.5", "1e12", '"36"', "1"],
  vocab: ["0", "1", "-5", "1e12", "2.5", '"512"'],
  tokens: ["0", "1", "c.tokens + 1", "-1", "1e12"],
  cvae: ["0", "3", "-1"],
  imageSize: ["0", "-32", "1e9"],
  window: ["0", "-1", "1e9"],
  depth: ["0", "1e9"],
};

/** What each command needs of a VAR model: entries (by prefix) and metadata. */
function needs(cmd: Cmd, calibrate: boolean): { entries: RegExp; meta: readonly string[] } | undefined {
  if (cmd === "generate" || cmd === "sample" || calibrate) {
    return { entries: /^(step_|fhat_|decode$)/, meta: ["schedule", "classes", "vocab", "tokens"] };
  }
  if (cmd === "decode") {
    return { entries: /^(tokens_to_fhat|decode)$/, meta: ["schedule", "classes", "vocab", "tokens"] };
  }
  if (cmd === "forward") return { entries: /^forward$/, meta: ["schedule", "classes", "vocab", "tokens"] };
  return undefined;
}

function makePartialSpec(rng: Rng): CliMutant {
  const m = pickModel(rng);
  const cmd = rng.weighted(
    [[3, "generate"], [2, "decode"], [2, "forward"], [2, "explain"], [1, "compile"], [1, "sample"]] as const,
  );
  const calibrate = (cmd === "explain" || cmd === "compile") && rng.chance(0.5);
  const entries = varEntries(m);
  const touched: string[] = [];
  const metaDrop: string[] = [];
  const metaSet: [string, string][] = [];
  const rounds = rng.between(1, 3);
  for (let r = 0; r < rounds; r++) {
    const names = [...entries.keys()];
    switch (rng.weighted([[3, "drop"], [2, "fake"], [1, "swap"], [2, "meta-drop"], [2, "meta-set"]] as const)) {
      case "drop": {
        const steps = names.filter((n) => /^(step|fhat)_/.test(n));
        const gone = rng.chance(0.3) && steps.length ? steps.filter(() => rng.chance(0.5)) : [rng.pick(names)];
        for (const g of gone) entries.delete(g), touched.push(g);
        break;
      }
      case "fake": {
        const n = rng.pick(names);
        const key = n.startsWith("step_") ? "step" : n.startsWith("fhat_") ? "fhat" : n;
        entries.set(n, rng.pick(FAKE_ENTRIES[key]!));
        touched.push(n);
        break;
      }
      case "swap": {
        const [a, b] = [rng.pick(names), rng.pick(names)];
        if (a === b) break;
        const t = entries.get(a)!;
        entries.set(a, entries.get(b)!), entries.set(b, t);
        touched.push(a, b);
        break;
      }
      case "meta-drop":
        metaDrop.push(rng.pick(META_FIELDS));
        break;
      case "meta-set": {
        const k = rng.pick(Object.keys(META_VALUES));
        metaSet.push([k, rng.pick(META_VALUES[k]!)]);
        break;
      }
    }
  }
  if (entries.size === 0) entries.set("decode", FAKE_ENTRIES.decode![0]!);
  const drops = [...new Set(metaDrop)];
  const spec = [
    `import { B, blockCausal, input, model, varConfig } from "@rel/compiler/dsl/lang.ts";`,
    `import { fhatEntry, fhatFromTokens, forwardEntry, OPTIONAL_WEIGHTS, stepEntry, tanhGeluFfn } from "@rel/compiler/dsl/lib/var.ts";`,
    `import { decoder, toUnit } from "@rel/compiler/dsl/lib/vqvae.ts";`,
    `const c = varConfig(${m.config});`,
    `const n = c.schedule[c.schedule.length - 1];`,
    `const { ${
      drops.map((k, i) => `${k}: _drop${i}, `).join("")
    }...base } = { ...c, window: c.schedule.length, family: "var" };`,
    `export default model({`,
    `  name: "partial",`,
    `  entries: {`,
    ...[...entries].map(([k, v]) => `    ${k}: ${v},`),
    `  },`,
    `  meta: { ...base${metaSet.map(([k, v]) => `, ${k}: ${v}`).join("")} },`,
    `  optionalWeights: OPTIONAL_WEIGHTS,`,
    `});`,
    ``,
  ].join("\n");
  const need = needs(cmd, calibrate);
  const hits = need === undefined ? [] : [
    ...touched.filter((e) => need.entries.test(e)),
    ...[...drops, ...metaSet.map(([k]) => k)].filter((k) => need.meta.includes(k)),
  ];
  // A command checks the entries it runs and the metadata it reads; other metadata it may ignore or refuse.
  // Without some entries the model reads fewer tensors: the checkpoint's others are then refused by name.
  const unread = touched.length ? ["the model neither uses nor ignores"] : [];
  const codes = hits.length ? [1] : metaSet.length || drops.length || touched.length ? [0, 1] : [0];
  let args = baseArgs(m, cmd, defaultOut(cmd));
  args[0] = "@case/partial.var.ts";
  if (calibrate) args = [...args, "--calibrate", "1", "--var", repo(m.var), "--vae", repo(m.vae)];
  const what = [
    touched.length ? `entries ${[...new Set(touched)].slice(0, 4).join(", ")} changed` : "",
    drops.length ? `metadata without ${drops.join(", ")}` : "",
    metaSet.length ? `metadata ${metaSet.map(([k, v]) => `${k} = ${v}`).join(", ")}` : "",
  ].filter(Boolean).join("; ");
  return {
    cls: "internal-errors",
    seed: m.name,
    what: `${cmd}${calibrate ? " --calibrate" : ""} of a partial VAR model: ${what}`,
    command: cmd,
    args,
    setup: [{ kind: "file", path: "@case/partial.var.ts", text: spec }],
    expect: hits.length || unread.length ? { codes, names: [...new Set(hits), ...unread] } : { codes },
    ...(need && !calibrate ? { same: repo(m.spec) } : {}),
  };
}

/** Values thrown by injected faults. */
const FAULT_VALUES: readonly (() => unknown)[] = [
  () => new TypeError("Cannot read properties of undefined (reading 'outputs')"),
  () => new RangeError("Invalid typed array length: -1"),
  () => new Error("injected fault\n    at fake (x.ts:1:1)"),
  () => new SyntaxError("Unexpected token \u001b[2J in JSON"),
  () => "a thrown string\nsecond line",
  () => undefined,
  () => null,
  () => 42,
  () => ({ code: "EX" }),
  () => Object.create(null),
  () => new Error("x".repeat(100_000)),
  () => new AggregateError([new Error("a")], "several failures"),
  () => new Deno.errors.NotFound("injected not found"),
  () => new DOMException("injected", "AbortError"),
];

function makeFault(rng: Rng): CliMutant {
  const m = pickModel(rng, true);
  const cmd = rng.weighted(
    [[2, "compile"], [1, "bundle"], [1, "explain"], [3, "generate"], [2, "decode"], [2, "forward"], [2, "sample"], [
      1,
      "pack",
    ]] as const,
  );
  const at = rng.weighted([[3, "performance.now"], [2, "JSON.stringify"], [2, "TextEncoder.encode"]] as const);
  const call = at === "performance.now" ? rng.between(1, 60) : rng.between(1, 12);
  const value = rng.int(FAULT_VALUES.length);
  return {
    cls: "internal-errors",
    seed: m.name,
    what: `${cmd}: call ${call} of ${at} throws fault ${value}`,
    command: cmd,
    args: baseArgs(m, cmd, defaultOut(cmd)),
    setup: [],
    expect: { codes: [0, 2] },
    fault: { at, call, value },
  };
}

/** Flag values that must be refused, per flag; `@classes` is the model's class count. */
const BAD_VALUES: Readonly<Record<string, readonly string[]>> = {
  labels: ["0x3", "3e0", "+3", "3.0", "-1", "@classes", "", ",", "3,,4", "٣", "1".repeat(12), "3;4", "\u001b[2J"],
  cfg: ["1e308", "-1", "NaN", "Infinity", "abc", "10001", "1e400"],
  "top-k": ["-1", "@vocab+1", "2.5", "NaN", "1e9"],
  "top-p": ["1.5", "-0.1", "NaN", "2"],
  seed: ["0.5", "NaN", "1e400", "abc", "9007199254740993"],
  target: ["metal", "JS", "webgl"],
  attention: ["fast", "EXACT"],
  eps: ["0", "1", "-0.001", "NaN", "2"],
  family: ["legendre"],
  degree: ["0", "41", "2.5", "1e9", "-3"],
  calibrate: ["0", "1001", "1.5", "-1", "abc"],
  "print-ir-after": ["nope", "infer-shapes,nope"],
  "tokens-name": ["nope", "\u001b[31mred", "gen.idx_BL\n"],
  "per-class": ["0", "-1", "1.5", "abc", "1e3", "99999999999"],
  classes: ["@classes", "5-3", "a", "-1", "0-99", "", "3,,4"],
  batch: ["0", "-1", "1.5", "1e9"],
  shard: ["1/1", "2/1", "a/b", "0/0", "-1/2", "0/"],
  shards: ["0", "-1", "x"],
};
const GOOD_VALUES: Readonly<Record<string, readonly string[]>> = {
  labels: ["0", "@classes-1", " 3"],
  cfg: ["0", "2", "10000"],
  "top-k": ["0", "1", "@vocab"],
  "top-p": ["0", "1", "0.5"],
  seed: ["7", "-3"],
  target: ["js"],
  attention: ["exact", "auto"],
  eps: ["0.01"],
  family: ["taylor", "chebyshev"],
  degree: ["3"],
  "per-class": ["1"],
  classes: ["3", "0"],
  batch: ["1", "2"],
  shard: ["0/1"],
};
const FLAGS_OF: Readonly<Record<Cmd, readonly string[]>> = {
  generate: ["labels", "cfg", "top-k", "top-p", "seed", "target", "attention", "eps", "family", "degree"],
  decode: ["tokens-name", "target", "print-ir-after"],
  forward: ["labels", "tokens-name", "target", "attention", "eps", "family", "degree", "print-ir-after"],
  compile: ["target", "attention", "eps", "family", "degree", "calibrate", "print-ir-after"],
  bundle: ["target", "attention", "eps", "family", "degree"],
  explain: ["attention", "eps", "family", "degree", "calibrate"],
  sample: ["per-class", "classes", "batch", "shard", "shards", "seed", "cfg", "top-k", "top-p", "target", "attention"],
  pack: [],
};

function makeFlags(rng: Rng): CliMutant {
  const m = pickModel(rng, true);
  const cmd = rng.weighted(
    [[4, "generate"], [1, "decode"], [2, "forward"], [1, "compile"], [1, "bundle"], [2, "explain"], [2, "sample"], [
      1,
      "pack",
    ]] as const,
  );
  let args = baseArgs(m, cmd, defaultOut(cmd));
  const fill = (v: string) =>
    v.replace("@classes-1", String(m.classes - 1)).replace("@classes", String(m.classes))
      .replace("@vocab+1", String(m.vocab + 1)).replace("@vocab", String(m.vocab));
  const faults: string[] = [];
  const changes: string[] = [];
  const used = new Set<string>();
  const n = rng.between(1, 2);
  for (let i = 0; i < n; i++) {
    const kind = rng.weighted([[6, "bad"], [3, "good"], [1, "repeat"], [1, "unknown"], [1, "missing"]] as const);
    if (kind === "bad" || kind === "good") {
      const table = kind === "bad" ? BAD_VALUES : GOOD_VALUES;
      const flags = FLAGS_OF[cmd].filter((f) => table[f] && !used.has(f));
      if (!flags.length) continue;
      const f = rng.pick(flags);
      used.add(f);
      // labels of forward must match the token pyramid's two rows
      const v = fill(rng.pick(table[f]!)) + (f === "labels" && cmd === "forward" && kind === "good" ? ",1" : "");
      args = withFlag(args, `--${f}`, v);
      changes.push(`--${f} ${JSON.stringify(v)}`);
      // sample seeds are whole numbers
      if (kind === "bad" || (cmd === "sample" && f === "seed" && v.startsWith("-"))) faults.push(f);
    } else if (kind === "repeat") {
      const flags = args.filter((a, i) => a.startsWith("--") && args[i + 1] !== undefined && !used.has(a.slice(2)));
      if (!flags.length) continue;
      const f = rng.pick(flags);
      used.add(f.slice(2));
      args = [...args, f, args[args.indexOf(f) + 1]!];
      changes.push(`${f} twice`);
      faults.push(f.slice(2));
    } else if (kind === "unknown") {
      const f = rng.pick(["--lables", "--outt", "--top_k", "--seeds", "--x"]);
      args = [...args, f, "1"];
      changes.push(f);
      faults.push(f.slice(2));
    } else {
      const flags = args.filter((a, i) => a.startsWith("--") && args[i + 1] !== undefined && !used.has(a.slice(2)));
      if (!flags.length) continue;
      const f = rng.pick(flags);
      used.add(f.slice(2));
      const i = args.indexOf(f);
      args = [...args.slice(0, i), ...args.slice(i + 2), f];
      changes.push(`${f} without a value`);
      faults.push(f.slice(2));
    }
  }
  return {
    cls: "flags",
    seed: m.name,
    what: `${cmd} ${changes.join(", ") || "(unchanged)"}`,
    command: cmd,
    args,
    setup: [],
    expect: faults.length ? { codes: [1], names: faults } : { codes: [0] },
  };
}

/** Builds the case of one index from its generator. */
export function makeCliMutant(rng: Rng): CliMutant {
  const cls = rng.weighted(
    [
      [22, "special-files"],
      [22, "output-paths"],
      [5, "atomic-writes"],
      [17, "non-finite"],
      [20, "internal-errors"],
      [14, "flags"],
    ] as const,
  );
  switch (cls) {
    case "special-files":
      return makeSpecialFiles(rng);
    case "output-paths":
      return makeOutputPaths(rng);
    case "atomic-writes":
      return makeAtomicWrites(rng);
    case "non-finite":
      return makeNonFinite(rng);
    case "internal-errors":
      return rng.chance(0.55) ? makePartialSpec(rng) : makeFault(rng);
    case "flags":
      return makeFlags(rng);
  }
}

// ── making the case folder ───────────────────────────────────────────────────

/** Placeholders resolved for one case. */
interface Places {
  readonly caseDir: string;
  readonly ro?: string;
  readonly set?: string;
}

function place(s: string, p: Places): string {
  if (s.startsWith("@case")) return p.caseDir + s.slice("@case".length);
  if (s === "@set") {
    if (!p.set) throw new Error("no image set");
    return p.set;
  }
  if (s.startsWith("@repo/")) return join(ROOT, s.slice("@repo/".length));
  if (s.startsWith("@ro")) {
    if (!p.ro) throw new Error("no read-only folder on this machine");
    return p.ro + s.slice("@ro".length);
  }
  return s;
}

/** A folder this process cannot create entries in: a 0o555 folder, or /sys/kernel when running as root. */
function findReadOnly(corpus: CliCorpus): string | undefined {
  if (corpus.readOnly) return "dir" in corpus.readOnly ? corpus.readOnly.dir : undefined;
  const cannotWrite = (dir: string) => {
    try {
      const probe = join(dir, `.fuzz-probe-${crypto.randomUUID().slice(0, 8)}`);
      Deno.mkdirSync(probe);
      Deno.removeSync(probe);
      return false;
    } catch {
      return true;
    }
  };
  const own = join(corpus.tmpDir, "read-only");
  Deno.mkdirSync(own, { recursive: true });
  Deno.chmodSync(own, 0o555);
  if (cannotWrite(own)) corpus.readOnly = { dir: own };
  else if (Deno.build.os === "linux" && Deno.statSync("/sys/kernel").isDirectory && cannotWrite("/sys/kernel")) {
    corpus.readOnly = { dir: "/sys/kernel" };
  } else corpus.readOnly = { none: "no folder refuses writes to this process" };
  return "dir" in corpus.readOnly ? corpus.readOnly.dir : undefined;
}

/** An image set of one glyph made by `varc sample`, for `pack` (made once per thread). */
async function imageSet(corpus: CliCorpus): Promise<string> {
  if (corpus.set) return corpus.set;
  const dir = join(corpus.tmpDir, "image-set");
  removeCase(dir);
  const m = MODELS[0]!;
  const r = await runInProcess(["sample", ...baseArgs(m, "sample", dir).map((a) => place(a, { caseDir: dir }))]);
  if (r.code !== 0) throw new Error(`making the image set failed: ${r.err.slice(0, 300)}`);
  return corpus.set = dir;
}

function fileBytes(corpus: CliCorpus, path: string): Uint8Array {
  let b = corpus.bytes.get(path);
  if (!b) corpus.bytes.set(path, b = Deno.readFileSync(path));
  return b;
}

function planted(corpus: CliCorpus, s: Extract<Setup, { kind: "plant" }>, p: Places): Uint8Array {
  const bytes = fileBytes(corpus, place(s.from, p)).slice();
  const st = parseSafetensors(bytes, s.from);
  const names = [...st.entries.keys()].filter((n) => st.entries.get(n)!.dtype === "F32").sort();
  const e = st.entries.get(names[s.pick % names.length]!)!;
  const n = e.byteLength / 4, rng = new Rng(s.pick);
  const at = s.count === "all" ? Array.from({ length: n }, (_, i) => i) : Array.from(
    { length: s.count === "one" ? 1 : Math.min(n, rng.between(2, 8)) },
    () => rng.int(n),
  );
  const dv = new DataView(bytes.buffer, bytes.byteOffset + e.offset, e.byteLength);
  for (const i of at) dv.setFloat32(4 * i, Number(s.value), true);
  return bytes;
}

/** Makes the case folder; returns what to close afterwards. */
async function materialize(m: CliMutant, corpus: CliCorpus, p: Places): Promise<Deno.Listener[]> {
  Deno.mkdirSync(p.caseDir, { recursive: true });
  const listeners: Deno.Listener[] = [];
  const parent = (f: string) => Deno.mkdirSync(dirname(f), { recursive: true });
  for (const s of m.setup) {
    const path = place(s.path, p);
    switch (s.kind) {
      case "file":
        parent(path);
        Deno.writeTextFileSync(path, s.text.replaceAll("@rel/", relRoot(dirname(path))));
        if (s.mode !== undefined) Deno.chmodSync(path, s.mode);
        break;
      case "dir":
        Deno.mkdirSync(path, { recursive: true });
        break;
      case "symlink":
        parent(path);
        Deno.symlinkSync(place(s.target, p), path);
        break;
      case "fifo": {
        parent(path);
        const r = await new Deno.Command("mkfifo", { args: [path], stderr: "piped" }).output();
        if (!r.success) throw new Error(`mkfifo failed: ${new TextDecoder().decode(r.stderr)}`);
        break;
      }
      case "socket":
        parent(path);
        listeners.push(Deno.listen({ transport: "unix", path }));
        break;
      case "sparse": {
        parent(path);
        using f = Deno.openSync(path, { create: true, write: true });
        f.truncateSync(s.size);
        break;
      }
      case "plant":
        parent(path);
        Deno.writeFileSync(path, planted(corpus, s, p));
        break;
    }
  }
  return listeners;
}

/** The relative path from `dir` to the repository root, with a trailing slash. */
function relRoot(dir: string): string {
  const r = relative(dir, ROOT).replaceAll("\\", "/");
  return r === "" ? "./" : `${r}/`;
}

interface Entry {
  readonly kind: "file" | "dir" | "symlink" | "other";
  readonly size: number;
  readonly mtime: number;
}

/** Everything under `dir` (not following symlinks), by path relative to it. */
function snapshot(dir: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (d: string) => {
    let list: Deno.DirEntry[];
    try {
      list = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of list) {
      const full = join(d, e.name);
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(full);
      } catch {
        continue;
      }
      const kind = info.isSymlink ? "symlink" : info.isDirectory ? "dir" : info.isFile ? "file" : "other";
      out.set(relative(dir, full), { kind, size: info.size, mtime: info.mtime?.getTime() ?? 0 });
      if (kind === "dir") walk(full);
    }
  };
  walk(dir);
  return out;
}

/** A temporary name of the atomic writer, or an output-folder probe. */
const TEMPORARY = /(^|\/)\.[^/]*\.tmp$|(^|\/)\.varc-probe-/;

function removeCase(dir: string): void {
  const unlock = (d: string) => {
    try {
      Deno.chmodSync(d, 0o755);
      for (const e of Deno.readDirSync(d)) if (e.isDirectory) unlock(join(d, e.name));
    } catch {
      // not there, or not ours
    }
  };
  unlock(dir);
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
}

// ── running a case ───────────────────────────────────────────────────────────

/** What a run printed and how it ended. */
interface RunResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
  /** Absolute paths the run opened or read (in-process runs). */
  readonly opened: readonly string[];
  /** Whether an injected fault was thrown. */
  readonly fired: boolean;
  /** A JavaScript exception that escaped main() (in-process runs). */
  readonly escaped?: string;
}

type Patch = [object, string, unknown];

/** Runs `main(argv)` in this thread, capturing the console; records opened files and injects `fault`. */
async function runInProcess(argv: string[], fault?: Fault): Promise<RunResult> {
  const out: string[] = [], err: string[] = [], opened: string[] = [];
  const text = (a: unknown[]) => a.map((x) => typeof x === "string" ? x : String(x)).join(" ");
  const record = (path: unknown) => {
    if (typeof path === "string" || path instanceof URL) opened.push(resolve(String(path)));
  };
  const D = Deno as unknown as Record<string, (...a: unknown[]) => unknown>;
  const patches: Patch[] = [
    [console, "log", (...a: unknown[]) => void out.push(text(a))],
    [console, "info", (...a: unknown[]) => void out.push(text(a))],
    [console, "error", (...a: unknown[]) => void err.push(text(a))],
    [console, "warn", (...a: unknown[]) => void err.push(text(a))],
    [Deno.stderr, "isTerminal", () => false],
    [Deno.stdout, "isTerminal", () => false],
  ];
  for (const name of ["openSync", "open", "readFileSync", "readFile", "readTextFileSync", "readTextFile"]) {
    const f = D[name]!;
    patches.push([Deno, name, (...a: unknown[]) => (record(a[0]), f(...a))]);
  }
  let fired = false;
  if (fault) {
    const [obj, key] = fault.at === "performance.now"
      ? [performance, "now"]
      : fault.at === "JSON.stringify"
      ? [JSON, "stringify"]
      : [TextEncoder.prototype, "encode"];
    const f = (obj as unknown as Record<string, (...a: unknown[]) => unknown>)[key]!;
    let calls = 0;
    patches.push([obj, key, function (this: unknown, ...a: unknown[]) {
      if (++calls === fault.call && !fired) {
        fired = true;
        throw FAULT_VALUES[fault.value]!();
      }
      return f.apply(this, a);
    }]);
  }
  const saved = patches.map(([o, k]) => [o, k, (o as Record<string, unknown>)[k]] as Patch);
  for (const [o, k, v] of patches) (o as Record<string, unknown>)[k] = v;
  let code = -1, escaped: string | undefined;
  try {
    code = await main(argv);
  } catch (e) {
    escaped = describeSafely(e);
  } finally {
    for (const [o, k, v] of saved) (o as Record<string, unknown>)[k] = v;
  }
  // A fault thrown inside esbuild's client may leave its service broken: start a fresh one.
  if (fired) await esbuild.stop();
  return { code, out: out.join("\n"), err: err.join("\n"), opened, fired, ...(escaped ? { escaped } : {}) };
}

function describeSafely(e: unknown): string {
  try {
    return describeError(e);
  } catch {
    return "an exception that cannot be turned into text";
  }
}

/** Quotes an argument for bash. */
function sh(a: string): string {
  return `'${a.replaceAll("'", `'\\''`)}'`;
}

/** Runs the CLI in its own process under a file-size limit, with SIGXFSZ ignored (writes fail with EFBIG). */
async function runLimited(argv: string[], limitKiB: number, corpus: CliCorpus, timeoutMs: number): Promise<RunResult> {
  const deno = Deno.execPath();
  if (!corpus.cached) {
    await new Deno.Command(deno, { args: ["cache", "cli/varc.ts"], cwd: ROOT, stdout: "null", stderr: "null" })
      .output();
    corpus.cached = true;
  }
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const k of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  const cmd = `trap '' XFSZ; ulimit -f ${limitKiB}; exec ${sh(deno)} run -A cli/varc.ts ${argv.map(sh).join(" ")}`;
  const child = new Deno.Command("bash", {
    args: ["-c", cmd],
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const r = await child.output();
    const dec = new TextDecoder();
    return {
      code: r.signal ? 128 + Number(Deno.build.os === "linux" ? signalNumber(r.signal) : 0) : r.code,
      out: dec.decode(r.stdout).replace(/\n$/, ""),
      err: dec.decode(r.stderr).replace(/\n$/, ""),
      opened: [],
      fired: false,
    };
  } finally {
    clearTimeout(timer);
  }
}

function signalNumber(s: Deno.Signal): number {
  return ({ SIGKILL: 9, SIGXFSZ: 25, SIGSEGV: 11, SIGABRT: 6, SIGTERM: 15 } as Record<string, number>)[s] ?? 0;
}

// ── the oracle ───────────────────────────────────────────────────────────────

/** How a command-line case ended. */
export interface CliVerdict {
  readonly outcome: Outcome;
  readonly detail: string;
}

/** Most an error's stderr may hold (the usage text of a flag error included). */
const MAX_STDERR = 16 * 1024;
// deno-lint-ignore no-control-regex -- matching control characters is the point
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;
const STACK = /^\s+at .*(:\d+:\d+\)?|<anonymous>\)?)$/m;
/** Messages of the JavaScript engine, not of varc: a bug showing through. */
const BARE_JS =
  /Cannot read propert|Cannot set propert|is not a function|is not iterable|is not defined|Invalid array length|Invalid typed array length|Array buffer allocation failed|Maximum call stack|Cannot convert|of undefined|of null\b|Unexpected token/;
const PROGRESS = /^scale \d+\/\d+ \(\d+x\d+\) \d+ ms$/;
const DIAGNOSTIC = /^.+:\d+:\d+: error\[[a-z0-9-]+\]: /;

function fail(detail: string): CliVerdict {
  return { outcome: "failure", detail };
}

/** The error lines of stderr (`error: …`, `internal error …`, diagnostic headlines). */
function errorLines(err: string): string[] {
  return err.split("\n").filter((l) => l.startsWith("error: ") || l.startsWith("internal error") || DIAGNOSTIC.test(l));
}

/** Checks every case gets: code allowed, text short, escaped, one error line, no stack trace. */
function judgeText(m: CliMutant, r: RunResult, names?: readonly string[]): CliVerdict | undefined {
  if (r.escaped) return fail(`main() threw ${r.escaped}`);
  // stdout echoes the paths given on success; errors and progress go to stderr.
  if (STACK.test(r.out)) return fail(`stdout holds a stack trace: ${STACK.exec(r.out)![0].trim().slice(0, 120)}`);
  const raw = RAW_CONTROL.exec(r.err);
  if (raw) return fail(`stderr holds a raw U+${raw[0].charCodeAt(0).toString(16).padStart(4, "0")}`);
  if (STACK.test(r.err)) return fail(`stderr holds a stack trace: ${STACK.exec(r.err)![0].trim().slice(0, 120)}`);
  const long = r.err.split("\n").find((l) => l.length > MAX_LINE + 100); // a cut line and its prefix
  if (long !== undefined) return fail(`stderr has a line of ${long.length} characters`);
  const allowed = m.fault ? (r.fired ? [2] : [0]) : m.expect.codes;
  const lines = errorLines(r.err);
  const first = lines[0] ?? r.err.split("\n").find((l) => l && !PROGRESS.test(l)) ?? "";
  if (!allowed.includes(r.code)) {
    return fail(`exit ${r.code}, expected ${allowed.join(" or ")}: ${first.slice(0, 240)}`);
  }
  if (r.code === 0) return undefined;
  if (r.err.length > MAX_STDERR) return fail(`stderr is ${r.err.length} characters long`);
  if (r.code === 2) {
    const ls = r.err.split("\n"), at = ls.findIndex((l) => l.startsWith(`internal error in "varc ${m.command}": `));
    if (at < 0 || !ls[at + 1]?.startsWith("This is a bug in varc") || lines.length !== 1) {
      return fail(`exit 2 without the one-line internal-error report: ${r.err.slice(0, 240)}`);
    }
    return undefined;
  }
  const headline = lines.filter((l) => !DIAGNOSTIC.test(l));
  if (lines.some((l) => l.startsWith("internal error"))) return fail(`exit 1 with an internal error: ${first}`);
  if (lines.length === 0) return fail(`exit 1 without an error line: ${r.err.slice(0, 240)}`);
  if (headline.length > 1) return fail(`${headline.length} error lines: ${headline.slice(0, 2).join(" | ")}`);
  if (BARE_JS.test(first)) return fail(`a JavaScript engine message: ${first.slice(0, 240)}`);
  if (headline.length === 1) {
    const line = headline[0]!;
    if (names && !names.some((n) => line.includes(n))) {
      return fail(`the error does not name ${names.map((n) => JSON.stringify(n)).join(" or ")}: ${line}`);
    }
    if (m.expect.says && !new RegExp(m.expect.says, "i").test(line)) {
      return fail(`the error does not say /${m.expect.says}/: ${line.slice(0, 240)}`);
    }
  }
  return undefined;
}

/** The output files a successful run of `args` wrote (absolute paths). */
function outputsOf(m: CliMutant, args: readonly string[]): string[] {
  const out = args.find((a) => a.startsWith("--out="))?.slice(6) ?? args[args.indexOf("--out") + 1];
  if (m.command === "explain" || out === undefined) return [];
  if (FILE_OUT.has(m.command)) return [out];
  const labels = args[args.indexOf("--labels") + 1]?.split(",").length ?? 0;
  return finalNames(m.command, labels).map((f) => join(out, f));
}

/** Checks the outputs of an exit 0: complete, parseable, finite. */
function judgeOutputs(files: readonly string[]): string | undefined {
  for (const f of files) {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(f);
    } catch (e) {
      return `exit 0 but ${f} cannot be read: ${describeSafely(e)}`;
    }
    if (bytes.length === 0) return `exit 0 but ${f} is empty`;
    try {
      if (f.endsWith(".png")) decodePng(bytes);
      else if (f.endsWith(".json")) JSON.parse(new TextDecoder().decode(bytes));
      else if (f.endsWith(".jsonl")) new TextDecoder().decode(bytes).trimEnd().split("\n").map((l) => JSON.parse(l));
      else if (f.endsWith(".npz")) {
        if (bytes[0] !== 0x50 || bytes[1] !== 0x4b) return `exit 0 but ${f} is not a ZIP archive`;
      } else if (!/\.(js|ts|md|npz)$/.test(f)) {
        const st = parseSafetensors(bytes, f);
        for (const [name, e] of st.entries) {
          if (e.dtype !== "F32") continue;
          const bad = st.f32(name).findIndex((v) => !Number.isFinite(v));
          if (bad >= 0) return `exit 0 but ${basename(f)} holds ${st.f32(name)[bad]} in "${name}" at ${bad}`;
        }
      }
    } catch (e) {
      return `exit 0 but ${f} does not parse: ${describeSafely(e)}`;
    }
  }
  return undefined;
}

/** Runs one case and judges it; `timeoutMs` bounds a spawned run. */
export async function runCliMutant(
  m: CliMutant,
  corpus: CliCorpus,
  index: number,
  timeoutMs: number,
): Promise<CliVerdict> {
  const caseDir = join(corpus.tmpDir, `case-${index}`);
  const needsRo = JSON.stringify(m).includes("@ro");
  const places: Places = {
    caseDir,
    ...(needsRo ? { ro: findReadOnly(corpus) } : {}),
    ...(m.args.includes("@set") ? { set: await imageSet(corpus) } : {}),
  };
  if (needsRo && !places.ro) return fail(`fuzzer: ${(corpus.readOnly as { none: string }).none}`);
  removeCase(caseDir);
  let listeners: Deno.Listener[] = [];
  try {
    listeners = await materialize(m, corpus, places);
    const args = m.args.map((a) => a.startsWith("--out=") ? `--out=${place(a.slice(6), places)}` : place(a, places));
    const before = snapshot(caseDir);
    const roBefore = places.ro?.startsWith(corpus.tmpDir) ? snapshot(places.ro).size : 0;
    const argv = [m.command, ...args];
    const r = m.limitKiB !== undefined
      ? await runLimited(argv, m.limitKiB, corpus, timeoutMs)
      : await runInProcess(argv, m.fault);
    const names = m.expect.names?.map((n) => n.startsWith("path:") ? shown(basename(place(n.slice(5), places))) : n);
    const text = judgeText(m, r, names);
    if (text) return text;
    const after = snapshot(caseDir);
    const temp = [...after.keys()].find((k) => TEMPORARY.test(k));
    if (temp) return fail(`left a temporary file ${shown(temp)}`);
    if (places.ro?.startsWith(corpus.tmpDir) && snapshot(places.ro).size !== roBefore) {
      return fail("created something in the read-only folder");
    }
    if (m.expect.beforeInputs && r.code !== 0) {
      const flags = m.expect.beforeInputs === "all"
        ? ["--var", "--vae", "--tokens", "--labels-file"]
        : ["--var", "--vae"];
      const inputs = new Set(
        flags.filter((f) => args.includes(f)).map((f) => args[args.indexOf(f) + 1])
          .concat(m.expect.beforeInputs === "all" ? [args[0]!] : [])
          .filter((a): a is string => a !== undefined && !a.startsWith("-")).map((a) => resolve(a)),
      );
      const read = r.opened.find((o) => [...inputs].some((i) => o === i || o.startsWith(`${i}/`)));
      if (read) return fail(`read the input ${shown(read)} before refusing the output path`);
    }
    if (r.code === 0) {
      const bad = judgeOutputs(outputsOf(m, args));
      if (bad) return fail(bad);
      if (/\bNaN\b/.test(r.out)) {
        return fail(`exit 0 printing NaN: ${r.out.split("\n").find((l) => /\bNaN\b/.test(l))!.slice(0, 200)}`);
      }
      if (m.clean) {
        const bad = await judgeUnread(m, m.clean, r, args, corpus);
        if (bad) return fail(bad);
      }
      if (m.same) {
        const ref = await reference({ ...m, args: [m.same, ...m.args.slice(1)] }, corpus);
        const differs = differing(outputsOf(m, args).filter((f) => !f.endsWith(".jsonl")), ref);
        if (differs) return fail(`exit 0, but ${differs} differs from what the complete model writes`);
      }
      return { outcome: "ok", detail: `exit 0` };
    }
    const changed = changes(before, after);
    if (m.cls === "atomic-writes") {
      const bad = await judgeCut(m, r, args, corpus, caseDir);
      if (bad) return fail(bad);
    } else if (changed && !(m.fault && r.fired)) return fail(`the failed run changed ${changed}`);
    return { outcome: "rejected", detail: `exit ${r.code}: ${kindOf(errorLines(r.err)[0] ?? "")}` };
  } finally {
    for (const l of listeners) l.close();
    removeCase(caseDir);
  }
}

/**
 * An exit 0 with a planted value: a NaN or ±Infinity must not have been read (the outputs equal those of
 * the clean checkpoint); a finite value must not overflow (a rerun with --check-numerics passes).
 */
async function judgeUnread(
  m: CliMutant,
  clean: NonNullable<CliMutant["clean"]>,
  r: RunResult,
  args: readonly string[],
  corpus: CliCorpus,
): Promise<string | undefined> {
  if (clean.finite) {
    if (m.command !== "generate" && m.command !== "forward") return undefined;
    const again = await runInProcess([m.command, ...args, "--check-numerics"]);
    return again.code === 0
      ? undefined
      : `exit 0, but with --check-numerics: ${errorLines(again.err)[0]?.slice(0, 240) ?? `exit ${again.code}`}`;
  }
  const ref = await reference({ ...m, args: withFlag(m.args, clean.flag, clean.file) }, corpus);
  const got = outputsOf(m, args);
  const differs = differing(got, ref);
  if (differs) return `exit 0, but ${differs} differs from the clean checkpoint's: a non-finite weight was read`;
  const text = (s: string) => s.split("\n").filter((l) => !l.includes("wrote ") && !l.startsWith("time: ")).join("\n");
  if (got.length === 0 && text(r.out) !== text(ref.out)) {
    return `exit 0 printing other results than with the clean checkpoint: a non-finite weight was read`;
  }
  return undefined;
}

/** A compile report without its pass timings (report.json, report.md), which differ from run to run. */
function untimed(name: string, bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(bytes);
  if (name === "report.json") {
    const { passes: _, ...rest } = JSON.parse(text);
    return new TextEncoder().encode(JSON.stringify(rest));
  }
  return new TextEncoder().encode(text.split("\n").filter((l) => !/^\| [a-z-]+ \| [\d.]+ \|$/.test(l)).join("\n"));
}

/**
 * The first of `files` that differs from the reference's file of the same name: bytes, for a
 * safetensors file its tensors (its metadata names the spec), for a compile report all but timings.
 */
function differing(files: readonly string[], ref: Reference): string | undefined {
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
  for (const f of files) {
    const want = ref.files.get(basename(f)), bytes = Deno.readFileSync(f);
    if (!want) return basename(f);
    if (/^report\.(json|md)$/.test(basename(f))) {
      if (!same(untimed(basename(f), bytes), untimed(basename(f), want))) return basename(f);
      continue;
    }
    if (!f.endsWith(".safetensors")) {
      if (!same(bytes, want)) return basename(f);
      continue;
    }
    const [a, b] = [parseSafetensors(bytes, f), parseSafetensors(want, "reference")];
    if (a.entries.size !== b.entries.size) return basename(f);
    for (const [name, e] of a.entries) {
      const w = b.entries.get(name);
      if (!w || w.dtype !== e.dtype || w.shape.join() !== e.shape.join()) return `${basename(f)} "${name}"`;
      if (!same(bytes.subarray(e.offset, e.offset + e.byteLength), want.subarray(w.offset, w.offset + w.byteLength))) {
        return `${basename(f)} "${name}"`;
      }
    }
  }
  return undefined;
}

/** What differs between two snapshots (files and links; folders' times change with probes). */
function changes(before: Map<string, Entry>, after: Map<string, Entry>): string | undefined {
  for (const [k, a] of after) {
    const b = before.get(k);
    if (!b) return `${shown(k)} (new ${a.kind})`;
    if (a.kind !== b.kind || (a.kind !== "dir" && (a.size !== b.size || a.mtime !== b.mtime))) {
      return `${shown(k)} (modified)`;
    }
  }
  for (const k of before.keys()) if (!after.has(k)) return `${shown(k)} (removed)`;
  return undefined;
}

/** A short kind of an error line, for tallies: its text without paths, quotes and numbers. */
function kindOf(line: string): string {
  return line.replace(/^error: /, "").replace(/"[^"]*"/g, '"…"').replace(/\S*\/\S*/g, "PATH")
    .replace(/\d+(\.\d+)?/g, "N").replace(/,/g, ";").slice(0, 60);
}

/**
 * A run cut by the size limit: the error names a file under the output path, and each file left under
 * a final name is complete (equal to the output of an unlimited run).
 */
async function judgeCut(
  m: CliMutant,
  r: RunResult,
  args: readonly string[],
  corpus: CliCorpus,
  caseDir: string,
): Promise<string | undefined> {
  const named = /^error: writing (.+) failed: /.exec(errorLines(r.err)[0] ?? "")?.[1];
  const outputs = outputsOf(m, args);
  if (!named || !outputs.includes(named)) return `the error does not name an output file: ${r.err.slice(0, 200)}`;
  const ref = (await reference(m, corpus)).files;
  for (const f of outputs) {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(f);
    } catch {
      continue;
    }
    if (f === named) return `${shown(relative(caseDir, f))} failed but exists`;
    const want = ref.get(basename(f));
    if (!want) return `no reference for ${basename(f)}`;
    const complete = /report\.(json|md)$/.test(f)
      ? bytes.length > 0 && lines(bytes) === lines(want)
      : bytes.length === want.length && bytes.every((b, i) => b === want[i]);
    if (!complete) return `${shown(relative(caseDir, f))} is left incomplete (${bytes.length} of ${want.length} bytes)`;
  }
  return undefined;
}

function lines(b: Uint8Array): number {
  return b.reduce((n, c) => n + (c === 10 ? 1 : 0), 0);
}

/** The outputs of an unlimited in-process run of the case's command line, by file name, and stdout (cached). */
async function reference(m: CliMutant, corpus: CliCorpus): Promise<Reference> {
  const key = JSON.stringify([m.command, m.args]);
  const have = corpus.references.get(key);
  if (have) return have;
  // The same depth below tmpDir as a case folder, so relative paths in outputs agree.
  const dir = join(corpus.tmpDir, `ref-${corpus.references.size}`);
  removeCase(dir);
  const args = m.args.map((a) => place(a, { caseDir: dir, ...(corpus.set ? { set: corpus.set } : {}) }));
  const r = await runInProcess([m.command, ...args]);
  if (r.code !== 0) throw new Error(`reference run of ${m.command} failed: ${r.err.slice(0, 300)}`);
  const ref = { files: new Map(outputsOf(m, args).map((f) => [basename(f), Deno.readFileSync(f)])), out: r.out };
  removeCase(dir);
  corpus.references.set(key, ref);
  return ref;
}

/** The case as a file to keep: its command line, setup and expectations. */
export function cliArtifact(m: CliMutant): Artifact {
  const lines = [
    `# ${m.cls}: ${m.what} (${m.seed})`,
    `# expect: ${JSON.stringify(m.expect)}${m.fault ? `; fault ${JSON.stringify(m.fault)}` : ""}`,
    ...m.setup.map((s) => `# setup: ${JSON.stringify(s)}`),
    `${
      m.limitKiB !== undefined ? `(trap '' XFSZ; ulimit -f ${m.limitKiB}; ` : ""
    }deno run -A cli/varc.ts ${m.command} ${m.args.map((a) => JSON.stringify(a)).join(" ")}${
      m.limitKiB !== undefined ? ")" : ""
    }`,
    "",
  ];
  return { ext: "cli.txt", text: lines.join("\n") };
}
