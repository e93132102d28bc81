/** Imports the compiler itself: only DSL modules may be imported. */
// expect-error 25 bad-import: Cannot import
import { compile } from "../../compiler/mod.ts";

export default compile;
