/**
 * @file The WebGPU device of generated model modules: tensors as storage buffers, one pending compute
 * pass that collects every dispatch until a read-back, pipelines cached by WGSL source, and a small
 * device-side status buffer through which kernels report bad run-time data and count low-rank guards.
 *
 * Released buffers go to a pool by size class and are handed out again, so repeated work (the steps
 * of a generation) allocates no new buffers once warm. A pooled buffer holds old data: `tensor()`
 * contents are unspecified unless asked for zeros, and kernels write every element of their outputs.
 *
 * Kernels are plain functions (`kernels.ts`) that record dispatches synchronously; nothing reaches
 * the GPU until `read()`, `guardStats()` or `flush()` submits the batch. Errors therefore surface
 * there: shader compilation (WgslError), device-side checks (GpuKernelError), device loss
 * (DeviceLostError). Only buffer sizes are checked at call time (RangeError).
 */
import type { KernelArgs, KernelName } from "../kernels.ts";

/** Element type of a device tensor (both are 32-bit words). */
export type DType = "f32" | "i32";

/** The argument record of kernel `K` on WebGPU (`../kernels.ts`): every tensor a `GpuTensor`. */
export type GpuArgs<K extends KernelName> = KernelArgs<K, GpuTensor>;

/** A flat device tensor: a storage buffer holding `length` 32-bit elements. */
export class GpuTensor {
  constructor(readonly buffer: GPUBuffer, readonly length: number, readonly dtype: DType) {}
}

/** `navigator.gpu` is missing or offers no adapter. */
export class NoAdapterError extends Error {
  override name = "NoAdapterError";
}

/** The device was lost (destroyed, reset or crashed); the message says why. */
export class DeviceLostError extends Error {
  override name = "DeviceLostError";
}

/** A WGSL module failed to compile: kernel name, each message as line:col, the numbered source and the origin. */
export class WgslError extends Error {
  override name = "WgslError";
}

/** A device-side check reported bad run-time data (index out of range, non-finite value, low-rank guard). */
export class GpuKernelError extends Error {
  override name = "GpuKernelError";
  constructor(message: string, readonly kind: "range" | "numerics" | "guard" | "other") {
    super(message);
  }
}

/**
 * Words of the status buffer: the first (lowest) reporting site of the batch and the smallest position it
 * reported (atomicMin, NONE when clear), the reported value (filled by a fix-up dispatch), then the
 * cumulative guard counters.
 */
export const STATUS = { site: 0, pos: 1, value: 2, checks: 4, fallbacks: 5, words: 8 } as const;
/** "No report" in the site and position words. */
export const NONE = 0xffffffff;

/** Formats the message of one reporting site from the reported position and value bits. */
export type SiteMessage = (pos: number, valueBits: number) => { message: string; kind: GpuKernelError["kind"] };

/** Per-dispatch parameters: a 256-byte slot (64 u32 words) of a uniform buffer. */
const SLOT_BYTES = 256, SLOT_WORDS = SLOT_BYTES / 4, CHUNK_SLOTS = 256;

interface ParamChunk {
  readonly buffer: GPUBuffer;
  readonly host: Uint32Array<ArrayBuffer>;
  used: number;
}

/** Smallest allocation: storage bindings must not be empty, and vec4 views read whole 16-byte groups. */
function bufferBytes(length: number): number {
  return Math.max(16, Math.ceil((length * 4) / 16) * 16);
}

/**
 * Size classes of pooled buffers: multiples of a quarter of the power of two at or below the size (at
 * least 16 bytes), so a class wastes under 25% and nearby sizes (e.g. of neighbouring scales) share one.
 * `up` rounds a request up to its class; rounding down gives the class a buffer of any size can serve.
 */
function sizeClass(bytes: number, up: boolean): number {
  const step = Math.max(16, 2 ** Math.floor(Math.log2(bytes)) / 4);
  return (up ? Math.ceil : Math.floor)(bytes / step) * step;
}

/** Free buffers by size class (keyed by rounding their size down), oldest release first. */
class FreeList {
  #byClass = new Map<number, GPUBuffer[]>();
  #order = new Set<GPUBuffer>();
  bytes = 0;

  get count(): number {
    return this.#order.size;
  }

  add(b: GPUBuffer): void {
    const key = sizeClass(b.size, false);
    const list = this.#byClass.get(key);
    if (list) list.push(b);
    else this.#byClass.set(key, [b]);
    this.#order.add(b);
    this.bytes += b.size;
  }

  /**
   * A buffer of at least `bytes`: any of the request's class, else an exact-size one (uploads allocate
   * exact sizes, so a repeated upload finds its predecessor's buffer), most recently released first.
   */
  take(bytes: number): GPUBuffer | undefined {
    const list = this.#byClass.get(sizeClass(bytes, true));
    const b = list?.length ? list.at(-1) : this.#byClass.get(sizeClass(bytes, false))?.findLast((x) => x.size >= bytes);
    if (b) this.remove(b);
    return b;
  }

  remove(b: GPUBuffer): void {
    const list = this.#byClass.get(sizeClass(b.size, false))!;
    list.splice(list.lastIndexOf(b), 1);
    this.#order.delete(b);
    this.bytes -= b.size;
  }

  oldest(): GPUBuffer | undefined {
    return this.#order.values().next().value;
  }

  /** Empties the list, returning its buffers. */
  drain(): GPUBuffer[] {
    const all = [...this.#order];
    this.#byClass.clear();
    this.#order.clear();
    this.bytes = 0;
    return all;
  }
}

/** Usage of tensor buffers (a function: the GPUBufferUsage global may be missing where no WebGPU is). */
function tensorUsage(): number {
  return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

/** A WebGPU device with a pending command buffer. */
export class Gpu {
  /** Which spec node runs (set by generated code before each kernel call); used in error messages. */
  origin = "";
  /** The adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (fallback adapter)". */
  readonly info: string;
  readonly limits: GPUSupportedLimits;
  /**
   * Whether GEMM and exact attention tile through workgroup memory (the design for GPUs). Off on CPU
   * (fallback) adapters such as llvmpipe, where workgroup memory only adds barriers: the register-only
   * kernels measured 1.2× (attention) to 3–5× (GEMM) faster there. Settable, e.g. to test both forms.
   */
  tiling: boolean;

  #lost: GPUDeviceLostInfo | null = null;
  #pipelines = new Map<string, GPUComputePipeline | WgslError>();
  #compileChecks: Promise<WgslError | null>[] = [];
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #batchKernels = new Set<string>();
  #sites: SiteMessage[] = [];
  #chunks: ParamChunk[] = [];
  #chunkAt = 0;
  /** Released before the pending batch began (or in submitted batches): safe for any use. */
  #settled = new FreeList();
  /**
   * Released while the pending batch may still read them: only for outputs of later dispatches of the
   * same batch (which run after those reads), never for uploads (queue writes run before the batch).
   */
  #batchFree = new FreeList();
  #releasedTensors = new WeakSet<GpuTensor>();
  #created = 0;
  #reused = 0;
  #trimmed = 0;
  #cache = new WeakMap<object, GpuTensor>();
  #named = new Map<string, GpuTensor>();
  readonly #status: GpuTensor;

  private constructor(readonly device: GPUDevice, info: string, fallback: boolean) {
    this.info = info;
    this.tiling = !fallback;
    this.limits = device.limits;
    device.lost.then((lost) => {
      this.#lost = lost;
      this.#settled.drain(), this.#batchFree.drain(); // their memory went with the device
    });
    const status = device.createBuffer({
      size: STATUS.words * 4,
      usage: tensorUsage(),
      mappedAtCreation: true,
    });
    new Uint32Array(status.getMappedRange()).set([NONE, NONE, 0, 0, 0, 0, 0, 0]);
    status.unmap();
    this.#status = new GpuTensor(status, STATUS.words, "i32");
  }

  /**
   * Requests an adapter and a device with the adapter's largest storage-buffer limits. `gpu` defaults to
   * `navigator.gpu` (null: none); NoAdapterError when it is missing or returns no adapter.
   */
  static async create(
    gpu: GPU | null = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu ?? null,
  ): Promise<Gpu> {
    if (!gpu) throw new NoAdapterError("WebGPU is not available here (no navigator.gpu; Deno needs --unstable-webgpu)");
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new NoAdapterError("navigator.gpu.requestAdapter() found no adapter");
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      },
    });
    const ai = adapter.info;
    const name = ai.description || [ai.vendor, ai.architecture, ai.device].filter(Boolean).join(" ") ||
      "unknown adapter";
    const fallback = (ai as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter;
    return new Gpu(device, fallback ? `${name} (fallback adapter)` : name, fallback === true);
  }

  /** Throws DeviceLostError once the device is lost. */
  #alive(): void {
    if (this.#lost) {
      throw new DeviceLostError(
        `WebGPU device lost (${this.#lost.reason}): ${this.#lost.message || "no message"}${this.#where()}`,
      );
    }
  }

  #where(): string {
    return this.origin ? ` (at ${this.origin})` : "";
  }

  #checkSize(length: number): number {
    const bytes = bufferBytes(length);
    const limit = Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize);
    if (bytes > limit) {
      throw new RangeError(
        `${this.origin || "WebGPU"}: a tensor of ${length} elements (${bytes} bytes) exceeds the device's ` +
          `maxStorageBufferBindingSize of ${limit} bytes`,
      );
    }
    return bytes;
  }

  /** Read-backs so far (`read` calls and the bytes they returned), e.g. to check what leaves the device. */
  readonly readStats = { reads: 0, bytes: 0 };

  /** Most bytes the pool keeps in settled free buffers; the oldest released beyond it are destroyed. */
  poolLimit = 512 * 2 ** 20;

  /**
   * Tensor buffers created and taken from the pool so far, buffers destroyed to keep the pool within
   * `poolLimit`, and the buffers and bytes pooled now.
   */
  bufferStats(): { created: number; reused: number; trimmed: number; pooled: number; pooledBytes: number } {
    return {
      created: this.#created,
      reused: this.#reused,
      trimmed: this.#trimmed,
      pooled: this.#settled.count + this.#batchFree.count,
      pooledBytes: this.#settled.bytes + this.#batchFree.bytes,
    };
  }

  /** A device tensor holding `data`. */
  upload(data: Float32Array | Int32Array): GpuTensor {
    this.#alive();
    const size = this.#checkSize(data.length);
    const dtype = data instanceof Int32Array ? "i32" : "f32";
    const pooled = this.#settled.take(size);
    if (pooled) {
      this.#reused++;
      this.device.queue.writeBuffer(pooled, 0, data as ArrayBufferView<ArrayBuffer>);
      return new GpuTensor(pooled, data.length, dtype);
    }
    // Exact size: most uploads are weights and constants, which stay for the device's life.
    const buffer = this.device.createBuffer({ size, usage: tensorUsage(), mappedAtCreation: true });
    this.#created++;
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buffer.unmap();
    return new GpuTensor(buffer, data.length, dtype);
  }

  /**
   * A device tensor for kernel output. Its contents are unspecified (a pooled buffer keeps old data)
   * unless `zero`, which clears it in the pending batch.
   */
  tensor(length: number, dtype: DType = "f32", zero = false): GpuTensor {
    this.#alive();
    const bytes = this.#checkSize(length);
    const pooled = this.#batchFree.take(bytes) ?? this.#settled.take(bytes);
    if (!pooled) {
      const limit = Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize);
      const size = Math.min(sizeClass(bytes, true), limit);
      this.#created++;
      return new GpuTensor(this.device.createBuffer({ size, usage: tensorUsage() }), length, dtype);
    }
    this.#reused++;
    if (zero) {
      const encoder = this.#openEncoder();
      this.#pass?.end();
      this.#pass = null;
      encoder.clearBuffer(pooled, 0, bytes);
    }
    return new GpuTensor(pooled, length, dtype);
  }

  /**
   * Returns a tensor's buffer to the pool; the pending batch may still use it. Releasing a tensor again
   * does nothing.
   */
  release(t: GpuTensor): void {
    if (this.#releasedTensors.has(t)) return;
    this.#releasedTensors.add(t);
    if (this.#lost) return;
    if (this.#encoder) this.#batchFree.add(t.buffer);
    else this.#settle([t.buffer]);
  }

  /** Pools buffers that no unsubmitted work uses, then trims the pool to `poolLimit`, oldest first. */
  #settle(buffers: readonly GPUBuffer[]): void {
    for (const b of buffers) this.#settled.add(b);
    while (this.#settled.bytes > this.poolLimit) {
      const b = this.#settled.oldest()!;
      this.#settled.remove(b);
      b.destroy();
      this.#trimmed++;
    }
  }

  /**
   * A constant tensor uploaded once per device: cached by `key` (an object, by identity, or a string).
   * For tables derived from host constants (key ranges, feature tables, resampling matrices).
   */
  constant(key: object | string, make: () => Float32Array | Int32Array): GpuTensor {
    const hit = typeof key === "string" ? this.#named.get(key) : this.#cache.get(key);
    if (hit) return hit;
    const t = this.upload(make());
    if (typeof key === "string") this.#named.set(key, t);
    else this.#cache.set(key, t);
    return t;
  }

  /** The status buffer (bound by kernels that report errors or count guards). */
  get status(): GpuTensor {
    return this.#status;
  }

  /** Registers a reporting site of the pending batch; its id is passed to the kernel. */
  site(message: SiteMessage): number {
    this.#sites.push(message);
    return this.#sites.length; // ids start at 1; NONE is the largest u32
  }

  /**
   * The compute pipeline of a WGSL source (entry point `main`), created once and cached by source.
   * Compilation is checked asynchronously; a failure is thrown as WgslError by the next read or flush
   * (or at once by `compile`).
   */
  pipeline(name: string, code: string): GPUComputePipeline {
    this.#alive();
    const hit = this.#pipelines.get(code);
    if (hit instanceof WgslError) throw hit;
    if (hit) return hit;
    const origin = this.origin;
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ label: name, code });
    const pipeline = this.device.createComputePipeline({
      label: name,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const scope = this.device.popErrorScope();
    this.#pipelines.set(code, pipeline);
    this.#compileChecks.push(
      scope.then(async (err) => {
        if (!err) return null;
        const e = await wgslError(name, code, module, err.message, origin);
        this.#pipelines.set(code, e);
        return e;
      }, () => null), // a lost device rejects the scope; DeviceLostError reports that
    );
    return pipeline;
  }

  /** Creates the pipeline of `code` and waits for its compilation result (WgslError on failure). */
  async compile(name: string, code: string): Promise<GPUComputePipeline> {
    const p = this.pipeline(name, code);
    await this.#checkCompiles();
    return p;
  }

  async #checkCompiles(): Promise<void> {
    if (this.#compileChecks.length === 0) return;
    const checks = this.#compileChecks;
    this.#compileChecks = [];
    const errs = (await Promise.all(checks)).filter((e): e is WgslError => e !== null);
    if (errs.length) {
      this.#discardBatch();
      throw errs[0]!;
    }
  }

  #paramSlot(words: readonly number[]): { buffer: GPUBuffer; offset: number } {
    if (words.length > SLOT_WORDS) throw new RangeError(`kernel parameters: ${words.length} words > ${SLOT_WORDS}`);
    let chunk = this.#chunks[this.#chunkAt];
    if (chunk && chunk.used === CHUNK_SLOTS) chunk = this.#chunks[++this.#chunkAt];
    if (!chunk) {
      chunk = {
        buffer: this.device.createBuffer({
          size: CHUNK_SLOTS * SLOT_BYTES,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        }),
        host: new Uint32Array(CHUNK_SLOTS * SLOT_WORDS),
        used: 0,
      };
      this.#chunks.push(chunk);
    }
    const slot = chunk.used++;
    chunk.host.set(words, slot * SLOT_WORDS);
    return { buffer: chunk.buffer, offset: slot * SLOT_BYTES };
  }

  /**
   * Records one dispatch of `workgroups` workgroups (folded into a 3-D grid within
   * maxComputeWorkgroupsPerDimension; kernels rebuild the flat workgroup index and bound-check it).
   * Binding 0 is the parameter block (`words`, u32), bindings 1.. are `tensors` in order.
   */
  dispatch(
    name: string,
    code: string,
    words: readonly number[],
    tensors: readonly GpuTensor[],
    workgroups: number,
  ): void {
    this.#alive();
    if (workgroups <= 0) return;
    const pipeline = this.pipeline(name, code);
    this.#pass ??= this.#openEncoder().beginComputePass();
    this.#batchKernels.add(this.origin ? `${name} (${this.origin})` : name);
    const param = this.#paramSlot(words);
    const entries: GPUBindGroupEntry[] = [{
      binding: 0,
      resource: { buffer: param.buffer, offset: param.offset, size: SLOT_BYTES },
    }];
    tensors.forEach((t, i) => entries.push({ binding: i + 1, resource: { buffer: t.buffer } }));
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    const x = Math.min(workgroups, max);
    const y = Math.min(Math.ceil(workgroups / x), max);
    const z = Math.ceil(workgroups / (x * y));
    if (z > max) throw new RangeError(`${this.origin || name}: ${workgroups} workgroups exceed the dispatch limits`);
    const pass = this.#pass!;
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
  }

  /** The pending batch's encoder, created (with its validation scope) by the batch's first command. */
  #openEncoder(): GPUCommandEncoder {
    if (!this.#encoder) {
      this.device.pushErrorScope("validation");
      this.#encoder = this.device.createCommandEncoder();
    }
    return this.#encoder;
  }

  #discardBatch(): void {
    if (this.#encoder) void this.device.popErrorScope().catch(() => {});
    this.#resetBatch();
  }

  /** Forgets the pending batch (submitted or discarded): encoder, sites, parameter slots, released buffers. */
  #resetBatch(): void {
    this.#encoder = null;
    this.#pass = null;
    this.#sites = [];
    this.#batchKernels.clear();
    for (const c of this.#chunks) c.used = 0;
    this.#chunkAt = 0;
    this.#settle(this.#batchFree.drain());
  }

  /**
   * Submits the pending batch with copies of `t` (if any) and the status words into one mappable
   * buffer, waits, and returns the tensor bytes and the status words. Throws WgslError, a validation
   * Error naming the batch's kernels, DeviceLostError or GpuKernelError.
   */
  async #submit(t: GpuTensor | null): Promise<{ data: ArrayBuffer; status: Uint32Array }> {
    this.#alive();
    await this.#checkCompiles();
    this.#alive();
    const dataBytes = t ? t.length * 4 : 0;
    const statusAt = Math.ceil(dataBytes / 256) * 256;
    const staging = this.device.createBuffer({
      size: statusAt + STATUS.words * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.#openEncoder();
    this.#pass?.end();
    if (t && dataBytes) encoder.copyBufferToBuffer(t.buffer, 0, staging, 0, dataBytes);
    encoder.copyBufferToBuffer(this.#status.buffer, 0, staging, statusAt, STATUS.words * 4);
    for (let i = 0; i <= this.#chunkAt && i < this.#chunks.length; i++) {
      const c = this.#chunks[i]!;
      if (c.used) this.device.queue.writeBuffer(c.buffer, 0, c.host, 0, c.used * SLOT_WORDS);
    }
    this.device.queue.submit([encoder.finish()]);
    // Clear the report words (not the counters) for the next batch; queued after this submit.
    this.device.queue.writeBuffer(this.#status.buffer, 0, new Uint32Array([NONE, NONE, 0, 0]));
    const validation = this.device.popErrorScope();
    const sites = this.#sites, kernels = [...this.#batchKernels];
    this.#resetBatch();

    const err = await validation;
    if (err) {
      staging.destroy();
      throw new Error(`WebGPU validation error in a batch running ${kernels.slice(0, 8).join(", ")}: ${err.message}`);
    }
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.#alive();
      throw e;
    }
    const range = staging.getMappedRange();
    const data = range.slice(0, dataBytes);
    const status = new Uint32Array(range.slice(statusAt, statusAt + STATUS.words * 4));
    staging.unmap();
    staging.destroy();
    if (status[STATUS.site] !== NONE) {
      const site = sites[status[STATUS.site]! - 1];
      const m = site
        ? site(status[STATUS.pos]!, status[STATUS.value]!)
        : { message: `a kernel reported error site ${status[STATUS.site]}`, kind: "other" as const };
      throw new GpuKernelError(m.message, m.kind);
    }
    return { data, status };
  }

  /**
   * Submits pending work, maps, copies `t` out; then checks the device's report words and throws
   * GpuKernelError if a kernel of the batch reported one.
   */
  async read(t: GpuTensor): Promise<Float32Array | Int32Array> {
    const { data } = await this.#submit(t);
    this.readStats.reads++, this.readStats.bytes += t.length * 4;
    return t.dtype === "i32" ? new Int32Array(data, 0, t.length) : new Float32Array(data, 0, t.length);
  }

  /** `read`, then `release`: for entry outputs that nothing else holds. */
  async readOnce(t: GpuTensor): Promise<Float32Array | Int32Array> {
    try {
      return await this.read(t);
    } finally {
      this.release(t);
    }
  }

  /** Submits pending work and checks it like `read`, reading nothing back. */
  async flush(): Promise<void> {
    await this.#submit(null);
  }

  /** Number of low-rank guard fallbacks and checks recorded on the device (read back on demand). */
  async guardStats(): Promise<{ checks: number; fallbacks: number }> {
    const { status } = await this.#submit(null);
    return { checks: status[STATUS.checks]!, fallbacks: status[STATUS.fallbacks]! };
  }

  /** Destroys the device and the pooled buffers (later calls throw DeviceLostError). */
  destroy(): void {
    for (const b of [...this.#settled.drain(), ...this.#batchFree.drain()]) b.destroy();
    this.device.destroy();
  }
}

/** The WgslError of a failed module: each compilation message as line:col, then the numbered source. */
async function wgslError(
  name: string,
  code: string,
  module: GPUShaderModule,
  fallback: string,
  origin: string,
): Promise<WgslError> {
  let messages: string[] = [];
  try {
    const info = await module.getCompilationInfo();
    messages = info.messages.map((m) =>
      `  ${m.lineNum}:${m.linePos} ${m.type}: ${m.message.trim().split("\n")[0]!.replace(/^Shader '[^']*' /, "")}`
    );
  } catch {
    // getCompilationInfo is optional in some implementations: the scope's message stands alone.
  }
  if (messages.length === 0) messages = [`  ${fallback.trim()}`];
  const lines = code.split("\n");
  const width = String(lines.length).length;
  const numbered = lines.map((l, i) => `${String(i + 1).padStart(width)} | ${l}`).join("\n");
  return new WgslError(
    `WGSL kernel "${name}" failed to compile${origin ? ` (at ${origin})` : ""}:\n${messages.join("\n")}\n${numbered}`,
  );
}
