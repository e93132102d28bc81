/**
 * @file Where a model's tensors live between entries, as one interface with a host implementation
 * (the JS target: tensors are typed arrays) and a GPU implementation (WebGPU: tensors stay on the
 * device, and logits are guided and sampled there). The generation loop is written once against it.
 */
import type { Device, HostTensor, ModelModule, Tensor } from "./mod.ts";
import { allocF32, pin, release } from "./js/pool.ts";
import { guide, sampleRowsWith } from "./sample.ts";
import type { Gpu, GpuTensor } from "./webgpu/device.ts";
import { type DeviceSampleOptions, sampleOnDevice } from "./webgpu/sample.ts";

export type { DeviceSampleOptions } from "./webgpu/sample.ts";

/** Tensors kept between entries (`run(..., { keep })`): read back, duplicated, sampled and freed by their owner. */
export interface ModelDevice {
  /**
   * Whether entries only queue their work, which runs at the next read-back (a device queue): a
   * caller timing stages then sees all of a step's work at its first read-back.
   */
  readonly deferred: boolean;
  /** The host copy of a tensor (a host tensor is returned as it is). */
  read(t: Tensor): Promise<HostTensor>;
  /** Its rows twice along the batch axis (`[n, ...]` -> `[2n, ...]`), where the tensor lives. */
  twice(t: Tensor): Promise<Tensor>;
  /** Frees a tensor (a host array the JS kernels allocated goes back to their pool for reuse). */
  release(t: Tensor): Promise<void>;
  /**
   * Guides logits [2B, T, V] (`guide`) and samples one token per row (`sampleRowsWith`) with the
   * caller's uniforms, consuming the logits: the tokens [B, T] stay where the logits were (the caller
   * frees them), with their host copy and, when asked, the guided logits [B, T, V].
   */
  sample(logits: Tensor, o: DeviceSampleOptions): Promise<{ tokens: Tensor; host: Int32Array; guided?: Float32Array }>;
  /** Read-backs from a device so far: `read` calls and bytes (outputs, taps and `read`); zeros on the host. */
  readStats(): Promise<{ reads: number; bytes: number }>;
}

/**
 * The host: tensors are typed arrays, so reads are free and sampling runs here. Released arrays
 * (and consumed logits) go back to the JS kernels' pool, so that the next image's caches and
 * activations reuse mapped memory; an array handed to the caller by `read` is pinned out of it.
 */
export const hostDevice: ModelDevice = {
  deferred: false,
  read: (t) => (pin(t.data), Promise.resolve(host(t))),
  twice(t) {
    const x = host(t), n = x.data.length * 2;
    const data = x.data instanceof Float32Array ? allocF32(n, { zeroed: false }) : new Int32Array(n);
    data.set(x.data), data.set(x.data, x.data.length);
    return Promise.resolve({ data, shape: [x.shape[0]! * 2, ...x.shape.slice(1)] });
  },
  release: (t) => Promise.resolve(release(t.data)),
  sample(logits, o) {
    const g = guide(host(logits).data as Float32Array, o.B, o.T * o.V, o.t);
    release(logits.data);
    const tokens = sampleRowsWith(g, o.V, o, o.uniforms);
    return Promise.resolve({
      tokens: { data: tokens, shape: [o.B, o.T] },
      host: tokens,
      ...(o.guided ? { guided: g } : {}),
    });
  },
  readStats: () => Promise.resolve({ reads: 0, bytes: 0 }),
};

/** A WebGPU module's device (created on first use by `gpu`): tensors stay there between entries. */
export function gpuDevice(module: ModelModule, gpu: () => Promise<Device>): ModelDevice {
  return {
    deferred: true,
    async read(t) {
      if (isHostData(t.data)) return t as HostTensor;
      return { data: await (await gpu()).read(t.data as never), shape: t.shape };
    },
    async twice(t) {
      const d = await gpu();
      const data = isHostData(t.data) ? d.upload(t.data) : t.data;
      const out = module.twice!(d as never, data as never) as Tensor["data"];
      if (data !== t.data) d.release(data as never);
      return { data: out, shape: [t.shape[0]! * 2, ...t.shape.slice(1)] };
    },
    async release(t) {
      if (!isHostData(t.data)) (await gpu()).release(t.data as never);
    },
    async sample(t, o) {
      const d = await gpu();
      const data = isHostData(t.data) ? d.upload(t.data) : t.data;
      const r = await sampleOnDevice(d as unknown as Gpu, data as GpuTensor, o);
      return { ...r, tokens: { data: r.tokens, shape: [o.B, o.T] } };
    },
    readStats: async () => ({ ...(await gpu()).readStats }),
  };
}

/** Whether a tensor's data is a host array (not a device tensor). */
export function isHostData(x: Tensor["data"]): x is Float32Array | Int32Array {
  return x instanceof Float32Array || x instanceof Int32Array;
}

function host(t: Tensor): HostTensor {
  if (!isHostData(t.data)) throw new TypeError("a device tensor reached the host device");
  return t as HostTensor;
}
