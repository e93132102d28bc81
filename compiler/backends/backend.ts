/** @file The backend interface and the registry of built-in backends. */
import type { IrModule } from "../ir/node.ts";
import type { CompileOptions } from "../options.ts";

/** What a backend produces for one model. */
export interface Emitted {
  /** Readable generated source, before bundling (TypeScript). */
  readonly source: string;
  /** One self-contained ES module: generated code plus the runtime kernels it calls. */
  readonly bundle: string;
  /** Type declarations of the bundle. */
  readonly dts: string;
}

/** Turns a lowered IR module into code. */
export interface Backend {
  readonly name: string;
  emit(module: IrModule, options: Readonly<CompileOptions>): Promise<Emitted>;
}
