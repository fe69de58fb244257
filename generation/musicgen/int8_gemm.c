/* Restyle's int8 matrix product for CPUs with AVX-512 VNNI: the decoder's step at a few rows
   (and, further down, its int8 key/value cache).

   A decoding step multiplies a few rows (candidates times two for guidance) by every weight, so
   its time is the bytes read. torch's weight-only int8 kernel (`_weight_int8pack_mm`) turns each
   weight into a float before multiplying and runs out of instructions at about 6 GB/s a core on
   these shapes; here the rows are quantised to 8 bits too (one scale per row, per call) and
   `vpdpbusd` multiplies 64 int8 pairs per instruction, so the loop streams the weights as fast
   as memory gives them. Compiled on first use by generation/musicgen/native.py; threads come from
   torch's own OpenMP runtime. */
#include <immintrin.h>
#include <stdint.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

/* Row r's i-th 16 inputs (fewer at the end of the row) as floats; bfloat16 is a float's top half. */
static __m512 load16(const void *x, int bf16, size_t at, __mmask16 mask) {
  if (!bf16) return _mm512_maskz_loadu_ps(mask, (const float *)x + at);
  __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)x + at));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

/* Quantize each row of x (m x k) to uint8 with a per-row scale: xq = round(x / s) + 128. */
static void quantize_rows(const void *x, int bf16, int m, int k, uint8_t *xq, float *scale) {
  for (int r = 0; r < m; r++) {
    size_t row = (size_t)r * k;
    __m512 peak = _mm512_set1_ps(1e-12f);
    for (int i = 0; i < k; i += 16) {
      __mmask16 mask = k - i >= 16 ? 0xffff : (__mmask16)((1u << (k - i)) - 1);
      peak = _mm512_max_ps(peak, _mm512_abs_ps(load16(x, bf16, row + i, mask)));
    }
    float s = _mm512_reduce_max_ps(peak) / 127.0f, inv = 1.0f / s;
    scale[r] = s;
    for (int i = 0; i < k; i += 16) {
      __mmask16 mask = k - i >= 16 ? 0xffff : (__mmask16)((1u << (k - i)) - 1);
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(load16(x, bf16, row + i, mask), _mm512_set1_ps(inv)));
      q = _mm512_add_epi32(q, _mm512_set1_epi32(128));
      _mm_mask_storeu_epi8(xq + row + i, mask, _mm512_cvtepi32_epi8(q));
    }
  }
}

/* The first 16 floats to out at `at` where `mask` says, as floats or as bfloat16 rounded to nearest
   even (as torch casts). */
static void store16(void *out, int bf16, size_t at, __m512 v, __mmask16 mask) {
  if (!bf16) {
    _mm512_mask_storeu_ps((float *)out + at, mask, v);
    return;
  }
  __m512i bits = _mm512_castps_si512(v);
  __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  bits = _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
  _mm256_mask_storeu_epi16((uint16_t *)out + at, mask, _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16)));
}

#define BLOCKS 4
/* One tile: R rows by 64 columns over all of k; the tile's weights are one sequential run of
   k * 64 bytes laid out [k/4][64][4], so the prefetchers see a single stream. */
#define TILE(R)                                                                                  \
  static void tile_##R(const int8_t *wb, const uint8_t *xq, int k, __m512i acc[4][BLOCKS]) {     \
    for (int r = 0; r < R; r++)                                                                  \
      for (int b = 0; b < BLOCKS; b++) acc[r][b] = _mm512_setzero_si512();                       \
    for (int kk = 0; kk < k / 4; kk++) {                                                         \
      const int8_t *wk = wb + (size_t)kk * 256;                                                  \
      _mm_prefetch((const char *)(wk + 2048), _MM_HINT_T0);                                      \
      _mm_prefetch((const char *)(wk + 2048 + 64), _MM_HINT_T0);                                 \
      _mm_prefetch((const char *)(wk + 2048 + 128), _MM_HINT_T0);                                \
      _mm_prefetch((const char *)(wk + 2048 + 192), _MM_HINT_T0);                                \
      __m512i a[R];                                                                              \
      for (int r = 0; r < R; r++) a[r] = _mm512_set1_epi32(*(const int32_t *)(xq + (size_t)r * k + kk * 4)); \
      for (int b = 0; b < BLOCKS; b++) {                                                         \
        __m512i wv = _mm512_loadu_si512((const void *)(wk + b * 64));                            \
        for (int r = 0; r < R; r++) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], a[r], wv);        \
      }                                                                                          \
    }                                                                                            \
  }
TILE(1)
TILE(2)
TILE(3)
TILE(4)

/* out (m x n) = x (m x k) @ w.T for int8 w (n x k), n a multiple of 64 and k of 4, packed as
   [n/64][k/4][64][4], with per-channel scales sw and row sums wsum (which undo the +128 offset
   that makes the activations unsigned). x and out are float32, or bfloat16 where `bf16` is set
   (the decoder's own dtype: no casts around the call). Returns nonzero if out of memory. */
int restyle_int8_gemm(const int8_t *packed, const void *x, int bf16, int m, int n, int k, const float *sw,
                      const int32_t *wsum, const float *bias, void *out) {
  uint8_t *xq = malloc((size_t)m * k);
  float *sa = malloc((size_t)m * sizeof(float));
  if (!xq || !sa) {
    free(xq);
    free(sa);
    return 1;
  }
  quantize_rows(x, bf16, m, k, xq, sa);
  const int groups = n / 64;
#pragma omp parallel for schedule(static)
  for (int g = 0; g < groups; g++) {
    const int8_t *wb = packed + (size_t)g * 64 * k;
    for (int r0 = 0; r0 < m; r0 += 4) {
      int rows = m - r0 < 4 ? m - r0 : 4;
      __m512i acc[4][BLOCKS];
      const uint8_t *xr = xq + (size_t)r0 * k;
      switch (rows) {
        case 1: tile_1(wb, xr, k, acc); break;
        case 2: tile_2(wb, xr, k, acc); break;
        case 3: tile_3(wb, xr, k, acc); break;
        default: tile_4(wb, xr, k, acc); break;
      }
      for (int b = 0; b < BLOCKS; b++) {
        int n0 = g * 64 + b * 16;
        __m512i offset = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(wsum + n0)), 7);
        __m512 s = _mm512_loadu_ps(sw + n0);
        __m512 bi = bias ? _mm512_loadu_ps(bias + n0) : _mm512_setzero_ps();
        for (int r = 0; r < rows; r++) {
          __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][b], offset));
          v = _mm512_fmadd_ps(_mm512_mul_ps(v, s), _mm512_set1_ps(sa[r0 + r]), bi);
          store16(out, bf16, (size_t)(r0 + r) * n + n0, v, 0xffff);
        }
      }
    }
  }
  free(xq);
  free(sa);
  return 0;
}

/* ---- The int8 key/value cache (generation/musicgen/kvcache.py) ----------------------------------
   A decoding step's attention reads the whole cache once per layer, so at 15 s into a window it
   reads as many bytes as a third of the int8 weights; one byte per value halves bfloat16's. Each
   slot's key and value (per head, d values) keep one float scale each. Keys are stored as uint8
   (round(k / s) + 128) in blocks of 16 slots laid out [d/4][16 slots][4], so `vpdpbusd` takes the
   scores of 16 slots per instruction against the query rounded to int8; values are int8 rows of d,
   summed in float against the softmax weights. */

/* Round the d values at x + at to int8 with one scale (as `quantize_rows`, unsigned there);
   returns the scale. */
static float round_vector(const void *x, int bf16, size_t at, int d, int8_t *q) {
  __m512 peak = _mm512_set1_ps(1e-12f);
  for (int j = 0; j < d; j += 16) {
    __mmask16 mask = d - j >= 16 ? 0xffff : (__mmask16)((1u << (d - j)) - 1);
    peak = _mm512_max_ps(peak, _mm512_abs_ps(load16(x, bf16, at + j, mask)));
  }
  float s = _mm512_reduce_max_ps(peak) / 127.0f;
  __m512 inv = _mm512_set1_ps(1.0f / s);
  for (int j = 0; j < d; j += 16) {
    __mmask16 mask = d - j >= 16 ? 0xffff : (__mmask16)((1u << (d - j)) - 1);
    __m512i rounded = _mm512_cvtps_epi32(_mm512_mul_ps(load16(x, bf16, at + j, mask), inv));
    _mm_mask_storeu_epi8(q + j, mask, _mm512_cvtepi32_epi8(rounded));
  }
  return s;
}

/* Write `length` slots from `start` for each row and head: row r's t-th key is at k + r * row_stride
   + t * stride elements (the same for v), head h's d values at h * d from there. */
void restyle_kv_store(const void *k, const void *v, int bf16, int rows, int length, int heads, int d,
                      int row_stride, int stride, int slots, int start, uint8_t *keys, float *key_scales, int8_t *values,
                      float *value_scales) {
  const size_t block = (size_t)16 * d;
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < length; t++)
      for (int h = 0; h < heads; h++) {
        size_t at = (size_t)r * row_stride + (size_t)t * stride + (size_t)h * d, head = (size_t)r * heads + h;
        int slot = start + t;
        int8_t q[d];
        key_scales[head * slots + slot] = round_vector(k, bf16, at, d, q);
        uint8_t *kb = keys + head * slots * d + (size_t)(slot / 16) * block + (slot % 16) * 4;
        for (int j = 0; j < d; j++) kb[(j / 4) * 64 + j % 4] = (uint8_t)(q[j] + 128);
        value_scales[head * slots + slot] = round_vector(v, bf16, at, d, values + (head * slots + slot) * d);
      }
}

/* exp(x) for x <= 0 (Cephes' expf polynomial, relative error about 1e-7). */
static __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

/* One query per row (a decoding step) against slots 0..span-1 of the cache, where `valid`
   ([rows][valid_stride] bytes, or NULL: all) allows; out is [rows][heads * d] in the input's dtype.
   d is a multiple of 4, slots of 16. */
void restyle_kv_attend(const void *q, int bf16, int rows, int heads, int d, int stride, int slots, int span,
                       const uint8_t *valid, int valid_stride, float scale, const uint8_t *keys, const float *key_scales,
                       const int8_t *values, const float *value_scales, void *out) {
  const int blocks = (span + 15) / 16;
#pragma omp parallel for schedule(static)
  for (int rh = 0; rh < rows * heads; rh++) {
    int r = rh / heads, h = rh % heads;
    int8_t q8[d];
    float qs = round_vector(q, bf16, (size_t)r * stride + (size_t)h * d, d, q8) * scale;
    int offset = 0;
    for (int j = 0; j < d; j++) offset += 128 * q8[j];
    const uint8_t *kb = keys + (size_t)rh * slots * d;
    const float *ks = key_scales + (size_t)rh * slots;
    float weights[blocks * 16];
    __m512 peak = _mm512_set1_ps(-INFINITY);
    for (int b = 0; b < blocks; b++) {
      __m512i acc = _mm512_setzero_si512(), odd = _mm512_setzero_si512();  // two chains: latency
      const uint8_t *block = kb + (size_t)b * 16 * d;
      int g = 0;
      for (; g + 1 < d / 4; g += 2) {
        acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512((const void *)(block + g * 64)),
                                  _mm512_set1_epi32(*(const int32_t *)(q8 + g * 4)));
        odd = _mm512_dpbusd_epi32(odd, _mm512_loadu_si512((const void *)(block + g * 64 + 64)),
                                  _mm512_set1_epi32(*(const int32_t *)(q8 + g * 4 + 4)));
      }
      if (g < d / 4)
        acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512((const void *)(block + g * 64)),
                                  _mm512_set1_epi32(*(const int32_t *)(q8 + g * 4)));
      acc = _mm512_add_epi32(acc, odd);
      int left = span - b * 16;
      __mmask16 live = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
      if (valid) live &= _mm_cmpneq_epi8_mask(_mm_maskz_loadu_epi8(live, valid + (size_t)r * valid_stride + b * 16), _mm_setzero_si128());
      __m512 score = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_set1_epi32(offset)));
      score = _mm512_mul_ps(_mm512_mul_ps(score, _mm512_set1_ps(qs)), _mm512_maskz_loadu_ps(live, ks + b * 16));
      score = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), live, score);
      _mm512_storeu_ps(weights + b * 16, score);
      peak = _mm512_max_ps(peak, score);
    }
    __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(peak)), total = _mm512_setzero_ps();
    const float *vs = value_scales + (size_t)rh * slots;
    for (int b = 0; b < blocks; b++) {
      __m512 score = _mm512_loadu_ps(weights + b * 16);
      __mmask16 live = _mm512_cmp_ps_mask(score, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
      __m512 e = _mm512_maskz_mov_ps(live, exp512(_mm512_sub_ps(score, top)));
      total = _mm512_add_ps(total, e);
      _mm512_storeu_ps(weights + b * 16, _mm512_mul_ps(e, _mm512_maskz_loadu_ps(live, vs + b * 16)));
    }
    float norm = 1.0f / _mm512_reduce_add_ps(total);
    const int8_t *vb = values + (size_t)rh * slots * d;
    for (int c = 0; c < d; c += 16) {  // 16 values of every slot, four slots' chains in registers
      __mmask16 lanes = d - c >= 16 ? 0xffff : (__mmask16)((1u << (d - c)) - 1);
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#define VALUE(s) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(lanes, vb + (size_t)(s) * d + c)))
      int s = 0;
      for (; s + 3 < span; s += 4) {
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(weights[s]), VALUE(s), s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(weights[s + 1]), VALUE(s + 1), s1);
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(weights[s + 2]), VALUE(s + 2), s2);
        s3 = _mm512_fmadd_ps(_mm512_set1_ps(weights[s + 3]), VALUE(s + 3), s3);
      }
      for (; s < span; s++) s0 = _mm512_fmadd_ps(_mm512_set1_ps(weights[s]), VALUE(s), s0);
#undef VALUE
      __m512 mean = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
      store16(out, bf16, (size_t)r * heads * d + (size_t)h * d + c, _mm512_mul_ps(mean, _mm512_set1_ps(norm)), lanes);
    }
  }
}
