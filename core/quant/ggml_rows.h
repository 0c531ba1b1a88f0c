#pragma once
// Row quantizers of the ggml block types (internal to core/quant; the public entry is ggml::quantize).
// Each writes one row of n values (n a multiple of the type's block size) as consecutive blocks at dst.
// importance (n entries, or null) selects ggml's importance-weighted search; without it the output is
// that of ggml's reference quantizer for the type.

#include <cstdint>

namespace qs::ggml::detail {

void quantizeRowQ4_0(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ4_1(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ5_0(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ5_1(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ8_0(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ2_K(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ3_K(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ4_K(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ5_K(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowQ6_K(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowIQ4_NL(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowIQ4_XS(const float* x, int64_t n, unsigned char* dst, const float* importance);
void quantizeRowMXFP4(const float* x, int64_t n, unsigned char* dst, const float* importance);

} // namespace qs::ggml::detail
