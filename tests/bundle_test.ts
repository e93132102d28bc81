/**
 * @file `varc bundle` and the esbuild plugin: a bundled model imported in Deno generates exactly what
 * the library does on the same random weights; an app importing a `.var.ts` builds and runs; spec
 * diagnostics become esbuild errors at the spec's file:line:column; the spec and its DSL imports are
 * watched (a change to an imported DSL module rebuilds).
 */
import assert from "node:assert/strict";
import * as esbuild from "esbuild";
import { dirname, join, relative } from "node:path";
import { fromFileUrl, toFileUrl } from "jsr-free-path";
import { main } from "../cli/varc.ts";
import { type CompiledModel, varcPlugin } from "../compiler/esbuild_plugin.ts";
import { compile, CompileError } from "../compiler/mod.ts";
import { generate, type GenerateOptions } from "../runtime/generate.ts";
import { importModel, type ModelModule } from "../runtime/mod.ts";
import { randomModel } from "../runtime/random.ts";
