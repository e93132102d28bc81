/** A compiler plugin with one backend, "ir-text": the module is its node count (for `varc compile --plugin`). */
import type { Plugin } from "../../compiler/plugin.ts";

/** How many times `setup` ran (the CLI test checks it runs once per compile). */
export const calls = { setup: 0 };

const plugin: Plugin = {
  name: "ir-text",
  setup: (b) => {
    calls.setup++;
    b.addBackend({
      name: "ir-text",
      emit: (m) =>
        Promise.resolve({ source: `// ${m.name}: ${m.nodes.length} nodes\n`, bundle: `export {};\n`, dts: "" }),
    });
  },
};
export default plugin;
