#pragma once
// NF4 (4-bit NormalFloat) in the plain bitsandbytes layout: the flattened tensor is cut into blocks of 64
// values; each block stores its absolute maximum as float32 and every value as the 4-bit index of the
// nearest of 16 fixed code values (bitsandbytes' NF4 table) times that absmax, two indices per byte.
// This is bitsandbytes' default for `load_in_4bit` (bnb_4bit_use_double_quant=False); the double-quantized
// variant (absmax itself 8-bit quantized in blocks of 256) is not modelled.
// Storage: ceil(n / 2) + 4 * ceil(n / 64) bytes for n values (4.5 bits per weight when 64 divides n).

#include <array>
#include <cstdint>
#include <optional>

namespace qs {

inline constexpr uint64_t kNf4BlockSize = 64;
const std::array<float, 16>& nf4Codebook();

// Index of the code value nearest to x (x already divided by the block absmax); values exactly between two
// codes go to the lower one, as bitsandbytes' decision tree does.
uint8_t nf4Index(float normalized);

// Quantize + dequantize n values of a flattened tensor, blocks starting at src[0].
void nf4RoundTrip(const float* src, uint64_t n, float* out);

std::optional<uint64_t> nf4StoredBytes(uint64_t elements);

} // namespace qs
