/** A compiler plugin with one backend, "ir-text": the module is its node count (for `varc compile --plugin`). */
import type { Plugin } from "../../compiler/plugin.ts";

const plugin: Plugin = {
  name: "ir-text",
  setup: (b) =>
    b.addBackend({
      name: "ir-text",
      emit: (m) =>
        Promise.resolve({ source: `// ${m.name}: ${m.nodes.length} nodes\n`, bundle: `export {};\n`, dts: "" }),
    }),
};
export default plugin;
