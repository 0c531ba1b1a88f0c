#pragma once
// Byte layouts of the ggml block types (as written in GGUF files) and the small numeric helpers the
// codecs share. Every struct is packed so that sizeof() is the on-disk block size; the static_asserts
// tie each one to dtypeInfo().blockBytes. Blocks are read and written with memcpy, never by casting a
// file pointer, so data needs no alignment.

#include "core/model/dtype.h"

#include <bit>
#include <cstdint>
#include <cstring>

namespace qs::ggml {

inline constexpr int kBlock = 32;       // values per block of the legacy types, IQ4_NL and MXFP4
inline constexpr int kSuperBlock = 256; // values per K-quant / IQ4_XS super-block

#pragma pack(push, 1)
// d: fp16 scale; value = d * (q - 8), q in the nibbles (low nibbles hold values 0..15, high 16..31).
struct BlockQ4_0 {
    uint16_t d;
    uint8_t qs[kBlock / 2];
};
// value = d * q + m.
struct BlockQ4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[kBlock / 2];
};
// As Q4_0 with a fifth bit per value in qh (bit j: value j), value = d * (q - 16).
struct BlockQ5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[kBlock / 2];
};
struct BlockQ5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[kBlock / 2];
};
struct BlockQ8_0 {
    uint16_t d;
    int8_t qs[kBlock];
};
// 16 sub-blocks of 16: 4-bit scale (low) and 4-bit min (high) per sub-block, 2-bit values.
struct BlockQ2_K {
    uint8_t scales[kSuperBlock / 16];
    uint8_t qs[kSuperBlock / 4];
    uint16_t d;
    uint16_t dmin;
};
// 16 sub-blocks of 16: 6-bit signed scales packed in 12 bytes, 2 low bits in qs + 1 high bit in hmask.
struct BlockQ3_K {
    uint8_t hmask[kSuperBlock / 8];
    uint8_t qs[kSuperBlock / 4];
    uint8_t scales[12];
    uint16_t d;
};
// 8 sub-blocks of 32: 6-bit scale and 6-bit min per sub-block packed in 12 bytes, 4-bit values.
struct BlockQ4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[kSuperBlock / 2];
};
struct BlockQ5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[kSuperBlock / 8];
    uint8_t qs[kSuperBlock / 2];
};
// 16 sub-blocks of 16: int8 scales, 6-bit values (4 low bits in ql, 2 high bits in qh).
struct BlockQ6_K {
    uint8_t ql[kSuperBlock / 2];
    uint8_t qh[kSuperBlock / 4];
    int8_t scales[kSuperBlock / 16];
    uint16_t d;
};
// value = d * kIq4nlValues[nibble].
struct BlockIQ4_NL {
    uint16_t d;
    uint8_t qs[kBlock / 2];
};
// 8 sub-blocks of 32 with 6-bit scales (low 4 bits in scalesL, high 2 bits in scalesH), IQ4_NL values.
struct BlockIQ4_XS {
    uint16_t d;
    uint16_t scalesH;
    uint8_t scalesL[kSuperBlock / 64];
    uint8_t qs[kSuperBlock / 2];
};
// OCP MX FP4: an E8M0 shared exponent and 32 E2M1 values.
struct BlockMXFP4 {
    uint8_t e;
    uint8_t qs[kBlock / 2];
};
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockIQ4_XS) == 136);
static_assert(sizeof(BlockMXFP4) == 17);

// The 16 non-linear levels of IQ4_NL / IQ4_XS (sorted ascending).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};
// E2M1 values times two (so they are integers); the block scale is therefore half the E8M0 value.
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// 2^(e - 128): half of the E8M0 scale, matching the doubled kMxfp4Values. e = 0 and 1 are subnormal.
inline float e8m0Half(uint8_t e)
{
    const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
    return std::bit_cast<float>(bits);
}

// floatToHalf() with no data-dependent branch when the result is a normal half (the common case).
inline uint16_t toHalfFast(float f)
{
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t absx = x & 0x7FFFFFFF;
    // Outside [2^-14, 65520): zero, subnormal, overflow, infinity, NaN.
    if (absx - 0x38800000u >= 0x477FF000u - 0x38800000u)
        return floatToHalf(f);
    uint32_t h = (absx - 0x38000000u) >> 13; // rebias the exponent from 127 to 15
    const uint32_t rest = absx & 0x1FFF;
    h += static_cast<uint32_t>(rest + (h & 1) > 0x1000); // nearest, ties to even; may carry (correctly)
    return static_cast<uint16_t>(((x >> 16) & 0x8000) | h);
}

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the rounded integer in the
// low mantissa bits. The quantizers' decisions depend on this exact rounding.
inline int nearestInt(float v)
{
    const float shifted = v + 12582912.0f;
    return static_cast<int>(std::bit_cast<uint32_t>(shifted) & 0x007fffff) - 0x00400000;
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K super-block.
inline void unpackScaleMinK4(int j, const uint8_t* packed, uint8_t& scale, uint8_t& min)
{
    if (j < 4) {
        scale = packed[j] & 63;
        min = packed[j + 4] & 63;
    } else {
        scale = (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4);
        min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    }
}

// The signed 6-bit scale of sub-block j of a Q3_K super-block.
inline int unpackScaleQ3K(int j, const uint8_t* packed)
{
    const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (low | (high << 4)) - 32;
}

template <typename Block> Block loadBlock(const unsigned char* p)
{
    Block b;
    std::memcpy(&b, p, sizeof(Block));
    return b;
}

} // namespace qs::ggml
