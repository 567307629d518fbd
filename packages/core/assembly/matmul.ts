// ---------------------------------------------------------------------------------------------
// matmul: C = op(A) · op(B), row-major, C (m×n) overwritten. op(A) is m×k, op(B) is k×n.
//
// Tiling (the GotoBLAS/BLIS scheme):
//
//   for jc in n step NC:                 a column block of op(B) and C
//     for pc in k step KC:               a depth block
//       pack op(B)[pc:+kc, jc:+nc] -> Bp  panels of NR=8 columns: Bp[panel][p][0..8)
//       for ic in m step MC:             a row block of op(A) and C
//         pack op(A)[ic:+mc, pc:+kc] -> Ap  panels of MR=4 rows: Ap[panel][p][0..4)
//         for jr in nc step NR:          one 8-wide B panel (kc·32 bytes: stays in L1)
//           for ir in mc step MR:        one 4-row A panel (Ap, kc·mc·4 bytes: stays in L2)
//             4x8 micro-kernel: C[ir:+4, jr:+8] (+)= Ap panel · Bp panel
//
// Packing makes both micro-kernel operands contiguous and unit-stride whatever the transposes
// (transposition happens while packing, so AᵀB and ABᵀ run as fast as AB), and pads the last
// panels with zeros so the micro-kernel always runs a full 4x8 tile. The micro-kernel keeps the
// 4x8 tile of C in 8 f32x4 registers: per step p it loads 8 floats of B (2 vectors), broadcasts
// the 4 floats of A and does 8 multiply-adds. 8 accumulators + 2 B + 1 A = 11 of x86's 16 vector
// registers; a 6x8 tile (15) ran out and spilled. The first depth block stores C, later ones add
// to it, so C never needs clearing. Edge tiles (fewer than 4 rows or 8 columns left) go through a
// 4x8 tile buffer in scratch and only their valid part is written to C.
//
// Scratch at packPtr (64-byte aligned, matmulPackBytes(m, k, n) bytes): Ap, then Bp, then the
// edge tile.
// ---------------------------------------------------------------------------------------------

const MR = 4;
const NR = 8;
const KC = 256;
const MC = 128;
const NC = 1024;
const TILE_BYTES = MR * NR * 4;

@inline function roundUp(x: i32, to: i32): i32 {
  return (x + to - 1) / to * to;
}

@inline function roundUp64(bytes: usize): usize {
  return (bytes + 63) & ~(<usize>63);
}

/** Bytes of scratch that matmul(m, k, n) needs at packPtr. */
export function matmulPackBytes(m: i32, k: i32, n: i32): i32 {
  const mc = min(m, MC), kc = min(k, KC), nc = min(n, NC);
  const aBytes = roundUp64(<usize>(roundUp(mc, MR) * kc * 4));
  const bBytes = roundUp64(<usize>(roundUp(nc, NR) * kc * 4));
  return <i32>(aBytes + bBytes + TILE_BYTES);
}

/**
 * C = op(A)·op(B), C (m×n) overwritten; transA/transB non-zero means A is stored k×m, B is stored
 * n×k; packPtr is scratch of matmulPackBytes(m, k, n) bytes.
 */
export function matmul(
  aPtr: usize, bPtr: usize, cPtr: usize, m: i32, k: i32, n: i32,
  transA: i32, transB: i32, packPtr: usize,
): void {
  gemm(aPtr, bPtr, cPtr, m, k, n, transA, transB, packPtr, false);
}

/**
 * matmul over operands with row strides: stored A's rows lda floats apart (A m×k, or k×m when
 * transA), B's ldb (k×n, or n×k when transB), C's ldc (m×n); e.g. one attention head's columns
 * inside a [T, 3·d] projection. packPtr is scratch of matmulPackBytes(m, k, n) bytes.
 */
export function matmulStrided(
  aPtr: usize, bPtr: usize, cPtr: usize, m: i32, k: i32, n: i32,
  transA: i32, transB: i32, lda: i32, ldb: i32, ldc: i32, packPtr: usize,
): void {
  gemmStrided(aPtr, bPtr, cPtr, m, k, n, transA, transB, lda, ldb, ldc, packPtr, false);
}

// matmul, or with `addToC` C += op(A)·op(B) (the convolution's weight gradient sums over samples).
export function gemm(
  aPtr: usize, bPtr: usize, cPtr: usize, m: i32, k: i32, n: i32,
  transA: i32, transB: i32, packPtr: usize, addToC: bool,
): void {
  gemmStrided(aPtr, bPtr, cPtr, m, k, n, transA, transB, transA != 0 ? m : k, transB != 0 ? k : n, n, packPtr, addToC);
}

function gemmStrided(
  aPtr: usize, bPtr: usize, cPtr: usize, m: i32, k: i32, n: i32,
  transA: i32, transB: i32, lda: i32, ldb: i32, ldcFloats: i32, packPtr: usize, addToC: bool,
): void {
  if (m <= 0 || n <= 0) return;
  const ldc = <usize>ldcFloats * 4;
  if (k <= 0) {
    if (!addToC) for (let i = 0; i < m; i++) memory.fill(cPtr + <usize>i * ldc, 0, <usize>n * 4);
    return;
  }
  const mcMax = min(m, MC), kcMax = min(k, KC);
  const aPack = packPtr;
  const bPack = aPack + roundUp64(<usize>(roundUp(mcMax, MR) * kcMax * 4));
  const tile = bPack + roundUp64(<usize>(roundUp(min(n, NC), NR) * kcMax * 4));
  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      const accumulate = pc > 0 || addToC;
      packB(bPtr, ldb, transB, pc, jc, kc, nc, bPack);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA(aPtr, lda, transA, ic, pc, mc, kc, aPack);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = min(NR, nc - jr);
          const bp = bPack + <usize>(jr * kc * 4);
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = min(MR, mc - ir);
            const ap = aPack + <usize>(ir * kc * 4);
            const cp = cPtr + <usize>(ic + ir) * ldc + <usize>(jc + jr) * 4;
            if (rows == MR && cols == NR) {
              microKernel(kc, ap, bp, cp, ldc, accumulate);
            } else {
              microKernel(kc, ap, bp, tile, NR * 4, false);
              writeEdge(tile, cp, ldc, rows, cols, accumulate);
            }
          }
        }
      }
    }
  }
}

// c + a·b. The relaxed-SIMD build (kernels-relaxed.wasm) fuses it into one multiply-add, which
// rounds once instead of twice: results differ from the plain build in the last bits only.
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

// The 4x8 tile: c[r][0..8) = sum over p of ap[p][r] * bp[p][0..8), stored or added at cp.
@inline function microKernel(kc: i32, ap: usize, bp: usize, cp: usize, ldc: usize, accumulate: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    ap += MR * 4;
    bp += NR * 4;
  }
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(cp)); c01 = f32x4.add(c01, v128.load(cp, 16));
    c10 = f32x4.add(c10, v128.load(cp + ldc)); c11 = f32x4.add(c11, v128.load(cp + ldc, 16));
    c20 = f32x4.add(c20, v128.load(cp + 2 * ldc)); c21 = f32x4.add(c21, v128.load(cp + 2 * ldc, 16));
    c30 = f32x4.add(c30, v128.load(cp + 3 * ldc)); c31 = f32x4.add(c31, v128.load(cp + 3 * ldc, 16));
  }
  v128.store(cp, c00); v128.store(cp, c01, 16);
  v128.store(cp + ldc, c10); v128.store(cp + ldc, c11, 16);
  v128.store(cp + 2 * ldc, c20); v128.store(cp + 2 * ldc, c21, 16);
  v128.store(cp + 3 * ldc, c30); v128.store(cp + 3 * ldc, c31, 16);
}

// Copies the valid rows×cols corner of a 4x8 tile buffer into C (or adds it).
function writeEdge(tile: usize, cp: usize, ldc: usize, rows: i32, cols: i32, accumulate: bool): void {
  for (let r = 0; r < rows; r++) {
    const src = tile + <usize>(r * NR * 4), dst = cp + <usize>r * ldc;
    for (let j = 0; j < cols; j++) {
      const off = <usize>j * 4;
      let v = load<f32>(src + off);
      if (accumulate) v += load<f32>(dst + off);
      store<f32>(dst + off, v);
    }
  }
}

// Loads 4 floats from each of 4 rows and stores them transposed: dst + q·dstStride receives
// (r0[q], r1[q], r2[q], r3[q]). Used where packing reads across rows (A not transposed, B
// transposed), so that those layouts pack with vector loads too.
@inline function transpose4x4(r0: usize, r1: usize, r2: usize, r3: usize, dst: usize, dstStride: usize): void {
  const x0 = v128.load(r0), x1 = v128.load(r1), x2 = v128.load(r2), x3 = v128.load(r3);
  const t0 = v128.shuffle<f32>(x0, x1, 0, 4, 1, 5); // x0[0] x1[0] x0[1] x1[1]
  const t1 = v128.shuffle<f32>(x2, x3, 0, 4, 1, 5); // x2[0] x3[0] x2[1] x3[1]
  const t2 = v128.shuffle<f32>(x0, x1, 2, 6, 3, 7);
  const t3 = v128.shuffle<f32>(x2, x3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst + dstStride, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * dstStride, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * dstStride, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
}

// Packs op(A)[ic:+mc, pc:+kc] into 4-row panels: dst[panel][p][r] = op(A)[ic + 4·panel + r][pc + p].
// A is stored m×k (row i at i·lda), or k×m when transposed (op(A)[i][p] at p·lda + i).
function packA(a: usize, lda: i32, transA: i32, ic: i32, pc: i32, mc: i32, kc: i32, dst: usize): void {
  for (let i0 = 0; i0 < mc; i0 += MR) {
    const rows = min(MR, mc - i0), i = ic + i0;
    if (rows == MR && transA != 0) {
      // four consecutive floats of a stored row are one panel step
      let src = a + (<usize>pc * <usize>lda + <usize>i) * 4;
      for (let p = 0; p < kc; p++) {
        v128.store(dst + <usize>(p * 16), v128.load(src));
        src += <usize>lda * 4;
      }
    } else if (rows == MR) {
      const rowBytes = <usize>lda * 4;
      const r0 = a + (<usize>i * <usize>lda + <usize>pc) * 4;
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const off = <usize>p * 4;
        transpose4x4(
          r0 + off, r0 + rowBytes + off, r0 + 2 * rowBytes + off, r0 + 3 * rowBytes + off, dst + <usize>(p * 16), 16,
        );
      }
      for (; p < kc; p++) {
        for (let r = 0; r < MR; r++) {
          store<f32>(dst + <usize>((p * MR + r) * 4), load<f32>(r0 + <usize>r * rowBytes + <usize>p * 4));
        }
      }
    } else {
      // the last, partial panel: rows past m are zero
      for (let p = 0; p < kc; p++) {
        for (let r = 0; r < MR; r++) {
          let v: f32 = 0;
          if (r < rows) v = loadA(a, lda, transA, i + r, pc + p);
          store<f32>(dst + <usize>((p * MR + r) * 4), v);
        }
      }
    }
    dst += <usize>(kc * MR * 4);
  }
}

@inline function loadA(a: usize, lda: i32, transA: i32, i: i32, p: i32): f32 {
  return transA != 0
    ? load<f32>(a + (<usize>p * <usize>lda + <usize>i) * 4)
    : load<f32>(a + (<usize>i * <usize>lda + <usize>p) * 4);
}

// Packs op(B)[pc:+kc, jc:+nc] into 8-column panels: dst[panel][p][j] = op(B)[pc + p][jc + 8·panel + j].
// B is stored k×n (row p at p·ldb), or n×k when transposed (op(B)[p][j] at j·ldb + p).
function packB(b: usize, ldb: i32, transB: i32, pc: i32, jc: i32, kc: i32, nc: i32, dst: usize): void {
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const cols = min(NR, nc - j0), j = jc + j0;
    if (cols == NR && transB == 0) {
      let src = b + (<usize>pc * <usize>ldb + <usize>j) * 4;
      for (let p = 0; p < kc; p++) {
        const d = dst + <usize>(p * 32);
        v128.store(d, v128.load(src));
        v128.store(d, v128.load(src, 16), 16);
        src += <usize>ldb * 4;
      }
    } else if (cols == NR) {
      // stored rows j..j+7 of B hold columns of op(B): transpose 4x4 blocks into the panel
      const rowBytes = <usize>ldb * 4;
      const r0 = b + (<usize>j * <usize>ldb + <usize>pc) * 4, r4 = r0 + 4 * rowBytes;
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const off = <usize>p * 4, d = dst + <usize>(p * 32);
        transpose4x4(r0 + off, r0 + rowBytes + off, r0 + 2 * rowBytes + off, r0 + 3 * rowBytes + off, d, 32);
        transpose4x4(r4 + off, r4 + rowBytes + off, r4 + 2 * rowBytes + off, r4 + 3 * rowBytes + off, d + 16, 32);
      }
      for (; p < kc; p++) {
        for (let c = 0; c < NR; c++) {
          store<f32>(dst + <usize>((p * NR + c) * 4), load<f32>(r0 + <usize>c * rowBytes + <usize>p * 4));
        }
      }
    } else {
      // the last, partial panel: columns past n are zero
      for (let p = 0; p < kc; p++) {
        for (let c = 0; c < NR; c++) {
          let v: f32 = 0;
          if (c < cols) v = loadB(b, ldb, transB, pc + p, j + c);
          store<f32>(dst + <usize>((p * NR + c) * 4), v);
        }
      }
    }
    dst += <usize>(kc * NR * 4);
  }
}

@inline function loadB(b: usize, ldb: i32, transB: i32, p: i32, j: i32): f32 {
  return transB != 0
    ? load<f32>(b + (<usize>j * <usize>ldb + <usize>p) * 4)
    : load<f32>(b + (<usize>p * <usize>ldb + <usize>j) * 4);
}
