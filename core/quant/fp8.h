#pragma once
// FP8 (OCP E4M3 "fn" and E5M2) scaled quantization, as FP8 checkpoints (compressed-tensors, FBGEMM) store
// weights: w ~ scale * fp8(w / scale) with scale = absmax / maxFinite (448 for E4M3, 57344 for E5M2), one
// float32 scale per tensor or per output row. Values round to the nearest FP8 value, ties to even, and
// saturate at +-maxFinite (never to infinity / NaN). Storage: 1 byte per weight + 4 bytes per scale.

#include <cstdint>
#include <optional>

namespace qs {

enum class Fp8Kind : uint8_t { E4M3, E5M2 };

float fp8MaxFinite(Fp8Kind kind); // 448 or 57344
// Encodes a float into the FP8 byte (round to nearest even, saturating; NaN stays NaN).
uint8_t floatToFp8(Fp8Kind kind, float value);
// Decodes an FP8 byte (a table built from qs::decodeToFloat, so it agrees with the model loader).
float fp8ToFloat(Fp8Kind kind, uint8_t code);

// The scale a group with this absolute maximum gets (1 when absmax is 0 or not finite).
float fp8ScaleFor(Fp8Kind kind, float absMax);

// Quantize + dequantize rows x cols values. perChannel: one scale per row; otherwise one scale for the whole
// tensor, taken from tensorAbsMax when given (a row chunk of a larger tensor).
void fp8RoundTrip(Fp8Kind kind, bool perChannel, const float* src, uint64_t rows, uint64_t cols, float* out,
                  std::optional<float> tensorAbsMax = {});

std::optional<uint64_t> fp8StoredBytes(bool perChannel, uint64_t rows, uint64_t cols);

} // namespace qs
