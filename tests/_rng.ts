/** @file Seeded random numbers for tests (the runtime's generator). */
export { randomF32, rng } from "../runtime/random.ts";
