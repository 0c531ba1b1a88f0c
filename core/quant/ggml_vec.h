#pragma once
// Vector versions of the simple (no importance) ggml row quantizers whose scalar code is slower than
// ggml's own: Q4_0, Q4_1, Q5_0, Q5_1 and MXFP4 (internal to core/quant). Each vector path makes exactly the scalar
// reference's decisions (same IEEE single-precision operations per lane, no fused multiply-add), so the
// bytes never depend on the code path; tests/core/tst_ggml_vec.cpp compares every level with the scalar
// reference. The level is chosen by a CPU check at first use: AVX2 (8 lanes), else SSE2 (4 lanes, the
// x86-64 baseline), else the scalar code.

#include <cstdint>

namespace qs::ggml::detail {

enum class QuantSimd { Scalar, Sse2, Avx2 };
QuantSimd bestQuantSimd();
QuantSimd quantSimd();
void setQuantSimd(QuantSimd level); // clamped to bestQuantSimd(); for tests and benchmarks
const char* quantSimdName(QuantSimd level);

// Each returns false (writing nothing) when the scalar level is selected.
bool quantizeRowQ4_0Vec(const float* x, int64_t n, unsigned char* dst);
bool quantizeRowQ5_0Vec(const float* x, int64_t n, unsigned char* dst);
bool quantizeRowMXFP4Vec(const float* x, int64_t n, unsigned char* dst);
bool quantizeRowQ4_1Vec(const float* x, int64_t n, unsigned char* dst);
bool quantizeRowQ5_1Vec(const float* x, int64_t n, unsigned char* dst);

// Q3_K without importance: make_q3_quants(16, 4, ...) of the 16 groups of a 256-value super-block, i.e.
// scales[g] and L[16 g + i] as the scalar makeQ3Quants writes them. False when the scalar level is selected.
bool makeQ3QuantsVec(const float* x, int8_t* L, float* scales);

// The MXFP4 shared exponent: floor(log2(amax)) - 2 + 127 clamped to [0, 254], 0 for amax = 0 — read from
// amax's exponent bits where log2f cannot round up to the next integer, else through log2f.
uint8_t mxfp4Exponent(float amax);

} // namespace qs::ggml::detail
