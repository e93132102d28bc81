/** @file Host helpers that the generated code of every target calls: input binding and taps. */
import { pin } from "./js/pool.ts";

/** A tensor on the host: flat data and its shape. */
export interface HostTensor {
  readonly data: Float32Array | Int32Array;
  readonly shape: readonly number[];
}

/** Data of a tensor that lives on a device (a WebGPU `GpuTensor`): its element count and dtype. */
export interface DeviceData {
  readonly length: number;
  readonly dtype: "f32" | "i32";
}

/** A model input or kept output: host data, or (device targets) a device tensor. */
export interface Tensor {
  readonly data: Float32Array | Int32Array | DeviceData;
  readonly shape: readonly number[];
}

/** Static description of a model input ("B" is the batch size). */
export interface InputSpec {
  readonly name: string;
  readonly dtype: "f32" | "i32";
  readonly shape: readonly (number | "B")[];
}

/** Error raised when inputs do not match the compiled model. */
export class InputError extends Error {
  override name = "InputError";
}

/**
 * Checks every input against its spec, infers B, and returns an accessor. With `device`, inputs may
 * also be device tensors (`{ length, dtype }` data), checked the same way.
 */
export function bindInputs(
  specs: readonly InputSpec[],
  inputs: Readonly<Record<string, Tensor>>,
  entry: string,
  device = false,
): { B: number; input: (name: string) => Float32Array | Int32Array | DeviceData } {
  let B: number | undefined;
  for (const spec of specs) {
    const t = Object.hasOwn(inputs, spec.name) ? inputs[spec.name] : undefined;
    if (!t) {
      throw new InputError(`${entry}: missing input "${spec.name}": expected ${spec.dtype}[${spec.shape.join(", ")}]`);
    }
    const onHost = t.data instanceof Float32Array || t.data instanceof Int32Array;
    if (
      !onHost && !(device && typeof t.data?.length === "number" && (t.data.dtype === "f32" || t.data.dtype === "i32"))
    ) {
      throw new InputError(`${entry}: input "${spec.name}" must be a Float32Array or Int32Array`);
    }
    const isInt = onHost ? t.data instanceof Int32Array : (t.data as DeviceData).dtype === "i32";
    if (isInt !== (spec.dtype === "i32")) {
      throw new InputError(`${entry}: input "${spec.name}" must be ${spec.dtype}, got ${isInt ? "i32" : "f32"}`);
    }
    const ok = t.shape.length === spec.shape.length && spec.shape.every((d, i) => {
      if (d !== "B") return t.shape[i] === d;
      B ??= t.shape[i];
      return t.shape[i] === B && B! >= 1;
    });
    if (!ok) {
      throw new InputError(
        `${entry}: input "${spec.name}" has shape [${t.shape}], expected [${spec.shape.join(", ")}]${
          B ? ` with B = ${B}` : ""
        }`,
      );
    }
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (t.data.length !== n) {
      throw new InputError(`${entry}: input "${spec.name}" has ${t.data.length} elements for shape [${t.shape}]`);
    }
  }
  for (const name of Object.keys(inputs)) {
    if (!specs.some((s) => s.name === name)) {
      throw new InputError(
        `${entry}: unknown input "${name}": this entry takes ${specs.map((s) => `"${s.name}"`).join(", ")}`,
      );
    }
  }
  return { B: B ?? 1, input: (name) => inputs[name]!.data };
}

/** Records requested labelled tensors; unknown requested labels are an error. */
export function tapper(
  wanted: readonly string[] | undefined,
  known: readonly string[],
): {
  wants: (label: string) => boolean;
  take: (label: string, data: Float32Array, shape: number[]) => void;
  taken: Record<string, HostTensor>;
} {
  const want = new Set(wanted ?? []);
  for (const w of want) {
    if (!known.includes(w)) {
      throw new InputError(
        `Unknown tap "${w}": this model labels ${known.length} tensors, e.g. ${
          known.slice(0, 4).map((k) => `"${k}"`).join(", ")
        }`,
      );
    }
  }
  const taken: Record<string, HostTensor> = {};
  return {
    wants: (label) => want.has(label),
    take: (label, data, shape) => void (pin(data), taken[label] = { data, shape }),
    taken,
  };
}
