/* Restyle's int8 matrix product for CPUs with AVX-512 VNNI: the decoder's step at a few rows.

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

/* Quantize each row of x (m x k floats) to uint8 with a per-row scale: xq = round(x / s) + 128. */
static void quantize_rows(const float *x, int m, int k, uint8_t *xq, float *scale) {
  for (int r = 0; r < m; r++) {
    const float *row = x + (size_t)r * k;
    float peak = 1e-12f;
    for (int i = 0; i < k; i++) peak = fmaxf(peak, fabsf(row[i]));
    float s = peak / 127.0f, inv = 1.0f / s;
    scale[r] = s;
    for (int i = 0; i < k; i++) xq[(size_t)r * k + i] = (uint8_t)(lrintf(row[i] * inv) + 128);
  }
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
   that makes the activations unsigned). xq (m x k) and sa (m) are scratch. */
void restyle_int8_gemm(const int8_t *packed, const float *x, int m, int n, int k, const float *sw,
                       const int32_t *wsum, const float *bias, float *out, uint8_t *xq, float *sa) {
  quantize_rows(x, m, k, xq, sa);
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
          _mm512_storeu_ps(out + (size_t)(r0 + r) * n + n0, v);
        }
      }
    }
  }
}
