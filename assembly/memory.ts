// The allocator the TypeScript side uses for every buffer it hands to a kernel.
// TLSF from AssemblyScript's minimal runtime; blocks are 16-byte aligned, which
// the SIMD kernels rely on for nothing but speed.

export function alloc(bytes: usize): usize {
  return heap.alloc(bytes);
}

export function free(ptr: usize): void {
  heap.free(ptr);
}
