// Fresh tensor and node names for what the export adds, never clashing with
// a name the model already uses.
import type { Graph } from "../graph/ir.ts";

export class Names {
  private readonly used = new Set<string>();

  constructor(graph: Graph) {
    for (const n of graph.nodes) {
      this.used.add(n.name);
      for (const name of [...n.inputs, ...n.outputs]) this.used.add(name);
    }
    for (const name of graph.initializers.keys()) this.used.add(name);
    for (const v of [...graph.inputs, ...graph.outputs]) this.used.add(v.name);
  }

  /** `base`, or `base_1`, `base_2`, … if taken; the result is then taken. */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}
