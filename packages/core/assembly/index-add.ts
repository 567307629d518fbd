// ---------------------------------------------------------------------------------------------
// index-add over rows (the embedding's gradient): out[idx[j]] += src[j] for rows of `inner` floats,
// j in order, each sum rounded to f32 as the JavaScript loop `out[k] += src[i]` on a Float32Array
// does: the same bits. Not flushed, like every reduction. The caller checks the indices.
// ---------------------------------------------------------------------------------------------

/** out[idx[j]·inner + i] += src[j·inner + i] for j < n in order, i < inner; idx holds n int32 row numbers (checked by the caller). */
export function indexAddRows(out: usize, src: usize, idx: usize, n: i32, inner: i32): void {
  const rowBytes = <usize>inner * 4;
  for (let j = 0; j < n; j++) {
    const dst = out + <usize>load<i32>(idx + <usize>j * 4) * rowBytes;
    const s = src + <usize>j * rowBytes;
    let i = 0;
    for (; i + 4 <= inner; i += 4) {
      const o = <usize>i * 4;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(s + o)));
    }
    for (; i < inner; i++) {
      const o = <usize>i * 4;
      store<f32>(dst + o, load<f32>(dst + o) + load<f32>(s + o));
    }
  }
}
