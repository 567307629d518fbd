#!/usr/bin/env node
// Error and speed of the float32 math kernels: the exact GELU's forward and derivative (geluF32,
// geluGradF32: the SIMD kernels' JavaScript twins, the same bits) against x·Φ(x) and Φ + x·φ in
// float64 over every 2^-22 step of [-14, 14] (the derivative absolute, the forward relative where
// |x·Φ(x)| >= 1e-36), the f32 exp (expF32, expF32Of64) against Math.exp over [-87, 1], and the
// SIMD kernels' ns per float over 1 Mi activations of standard deviation 0.8 and 1.7, one thread.
// Needs a build (dist/). Errors are in units of 2^-24.
// Run: node packages/core/scripts/f32-math.mjs
import { expF32, expF32Of64 } from "../dist/kernels/activations.js";
import { geluF32, geluGradF32 } from "../dist/kernels/gelu.js";
import { erf } from "../dist/kernels/special.js";
import { createWasmKernels } from "../dist/kernels/wasm/wasm-kernels.js";

const U = 2 ** 24;
// Φ below -2 from erfc's continued fraction (1 + erf(x) cancels there)
function erfcDeep(a) {
  let t = a;
  for (let i = 300; i >= 1; i--) t = a + i / 2 / t;
  return Math.exp(-a * a) / (t * Math.sqrt(Math.PI));
}
const cdf = (x) => (x < -2 ? 0.5 * erfcDeep(-x / Math.SQRT2) : 0.5 * (1 + erf(x / Math.SQRT2)));
const pdf = (x) => Math.exp((-x * x) / 2) / Math.sqrt(2 * Math.PI);

let forward = [0, 0],
  derivative = [0, 0];
for (let i = 0, n = 28 * 2 ** 22; i <= n; i++) {
  const x = Math.fround(-14 + i / 2 ** 22);
  const want = x * cdf(x);
  if (Math.abs(want) >= 1e-36) {
    const e = (Math.abs(geluF32(x) - want) / Math.abs(want)) * U;
    if (e > forward[0]) forward = [e, x];
  }
  const e = Math.abs(geluGradF32(1, x) - (cdf(x) + x * pdf(x))) * U;
  if (e > derivative[0]) derivative = [e, x];
}
console.log(`GELU forward:    worst ${forward[0].toFixed(2)}·2^-24 relative, at x = ${forward[1]}`);
console.log(`GELU derivative: worst ${derivative[0].toFixed(2)}·2^-24 absolute, at x = ${derivative[1]}`);

let exp32 = [0, 0],
  exp64 = [0, 0];
for (let i = 0, n = 4_000_000; i <= n; i++) {
  const x = Math.fround(-87 + (88 * i) / n);
  if (Math.exp(x) >= 1.2e-38) {
    const e = (Math.abs(expF32(x, 0) - Math.exp(x)) / Math.exp(x)) * U;
    if (e > exp32[0]) exp32 = [e, x];
  }
  const d = -87 + (88 * (i + 0.37)) / n;
  if (Math.exp(d) >= 1.2e-38) {
    const e = (Math.abs(expF32Of64(d) - Math.exp(d)) / Math.exp(d)) * U;
    if (e > exp64[0]) exp64 = [e, d];
  }
}
console.log(`exp, float32 x:  worst ${exp32[0].toFixed(2)}·2^-24 relative, at x = ${exp32[1]}`);
console.log(`exp, float64 x:  worst ${exp64[0].toFixed(2)}·2^-24 relative, at x = ${exp64[1]}`);

const n = 1 << 20;
const k = createWasmKernels({ heapBytes: 3 * n * 4 + (1 << 16), scratchBytes: 1 << 16 });
const [x, g, out] = [k.allocF32(n), k.allocF32(n), k.allocF32(n)];
for (const sd of [0.8, 1.7]) {
  // a sum of three uniforms: bell-shaped, standard deviation sd
  for (let i = 0; i < n; i++) {
    x[i] = (Math.random() + Math.random() + Math.random() - 1.5) * 2 * sd;
    g[i] = Math.random() - 0.5;
  }
  const line = [];
  for (const name of ["geluForward", "geluBackward"]) {
    const f = k.exports[name];
    const run =
      name === "geluForward"
        ? () => f(x.byteOffset, out.byteOffset, n)
        : () => f(g.byteOffset, x.byteOffset, out.byteOffset, n);
    for (let i = 0; i < 5; i++) run();
    const times = [];
    for (let r = 0; r < 7; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) run();
      times.push((performance.now() - t0) / 5);
    }
    times.sort((a, b) => a - b);
    line.push(`${name} ${((times[3] / n) * 1e6).toFixed(2)} ns`);
  }
  console.log(`1 Mi floats, sd ${sd}: ${line.join(", ")} per float (median of 7)`);
}
