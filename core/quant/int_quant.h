#pragma once
// Integer round-to-nearest (RTN) quantization with the grid conventions of the original GPTQ code
// (IST-DASLab/gptq quant.py, mse=False), and the exact storage size of GPTQ checkpoints.
//
// Grid of one group with b bits, maxq = 2^b - 1, xmin = min(0, min x), xmax = max(0, max x):
// - asymmetric: scale = (xmax - xmin) / maxq, zero = round(-xmin / scale);
// - symmetric:  a = max(|xmin|, xmax), scale = 2a / maxq, zero = 2^(b-1) (so the grid is
//   scale * {-2^(b-1) .. 2^(b-1) - 1}; +a itself rounds to 2^(b-1) and clips to 2^(b-1) - 1).
// When xmin = xmax = 0 the range becomes [-1, 1]. A value maps to q = clamp(round(x / scale) + zero, 0,
// maxq) and back to scale * (q - zero); round() is round-half-to-even and all arithmetic is float32, as in
// torch, so results are bit-identical to GPTQ's RTN quantizer (checked against gptq-reference.h5).
// Note that this symmetric grid is not the "absmax / (2^(b-1) - 1)" convention of some other tools: GPTQ
// checkpoints store a zero point of 2^(b-1) and use the full unsigned range.
//
// Storage (bytes) of a weight with N = rows (output features) and K = cols (input features), as
// AutoGPTQ / GPTQModel write it; G = ceil(K / groupSize) groups for per-group, G = 1 for per-channel:
//   qweight int32 [ceil(K*b/32), N]     4 * N * ceil(K*b/32)
//   qzeros  int32 [G, ceil(N*b/32)]     4 * G * ceil(N*b/32)   (stored for symmetric configs too)
//   scales  fp16  [G, N]                2 * G * N
//   g_idx   int32 [K]                   4 * K
// e.g. 4096 x 4096, 4 bits, g128, asymmetric: 8388608 + 65536 + 262144 + 16384 = 8732672 bytes (4.1641 bpw).
// AWQ checkpoints hold the same qweight/qzeros/scales bytes but no g_idx (4 * K bytes less).
// Real kernels need K and N to be multiples of 32; for other shapes the ceil() is the padding a writer
// adds. Per-tensor (one scale for the whole weight, not a GPTQ mode): qweight + one fp16 scale + one
// int32 zero word.

#include <cstdint>
#include <optional>

namespace qs {

struct IntQuantConfig {
    int bits = 4;        // 2..8
    int groupSize = 128; // > 0: group of columns; 0: whole tensor; -1: whole row (per output channel)
    bool symmetric = false;
};

// The grid of one group.
struct IntGrid {
    float scale = 1.0f;
    float zero = 0.0f;
    int maxq = 15;
    float quantize(float x) const; // the grid value nearest to x (GPTQ rounding and clipping)
};

IntGrid intGridFor(float minValue, float maxValue, int bits, bool symmetric);

// Exact GPTQ checkpoint bytes (see above); nullopt for an invalid config or on overflow.
std::optional<uint64_t> intStoredBytes(const IntQuantConfig& config, uint64_t rows, uint64_t cols);

// Quantize + dequantize rows x cols values (row-major). For per-tensor configs the grid comes from
// tensorMin / tensorMax when given (a chunk of a larger tensor), otherwise from the values themselves.
void intRoundTrip(const IntQuantConfig& config, const float* src, uint64_t rows, uint64_t cols, float* out,
                  std::optional<float> tensorMin = {}, std::optional<float> tensorMax = {});

} // namespace qs
