#pragma once
// The ggml block grids GPTQ quantizes into (core/quant/gptq.cpp with GptqConfig::ggml set).
//
// For each supported ggml type a codec describes one block (32 values) or super-block (256 values):
// its sub-blocks that share one scale A (and, for the asymmetric types, one offset B), its levels, and how
// levels are packed into and read from the block bytes (ggml_blocks.h). A value at level L decodes as
//   A * t(L)        (symmetric types)    or    A * t(L) + B   (asymmetric types)
// with t(L) = L + offset for the linear types and t(L) = kIq4nlValues[L] for IQ4_NL / IQ4_XS, computed
// in the same float operations as ggml's dequantization (core/quant/ggml_decode.cpp), so a value GPTQ
// reports is exactly what the packed block decodes to.
//
// GPTQ picks a block's grid (its scales / mins, i.e. the decoded d, dmin and sub-block scales) by running
// our ggml quantizer for that type on the block's current values, then rounds each column to the nearest
// level of that fixed grid (gptqGgmlNearest) and finally packs the levels into the block (pack), keeping the
// quantizer's scale bytes.

#include "core/model/dtype.h"

#include <cstdint>

namespace qs::gptq_ggml {

struct Codec {
    DType type;
    int blockValues;   // values per block (32) or super-block (256)
    int subValues;     // values per sub-block sharing one scale
    int levels;        // number of levels (codes 0 .. levels - 1)
    int offset;        // linear types: t(L) = L + offset
    int zeroLevel;     // the level used when a sub-block's scale is 0 (every level decodes the same)
    bool asymmetric;   // value = A * t + B
    const int8_t* table; // non-linear levels (IQ4): t(L) = table[L], ascending; null for linear types
    int blockBytes;
    // The block's row quantizer (ggml_rows.h): n values (a multiple of blockValues) into blocks.
    void (*quantize)(const float* x, int64_t n, unsigned char* dst, const float* importance);
    // A and B (blockValues / subValues entries each; B is 0 for symmetric types) of one block.
    void (*grid)(const unsigned char* block, float* a, float* b);
    // The level of every value of one block (blockValues entries) / writes them into the block, keeping
    // its scale bytes.
    void (*unpack)(const unsigned char* block, uint8_t* levels);
    void (*pack)(unsigned char* block, const uint8_t* levels);
};

// The codec of a ggml type GPTQ supports (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
// IQ4_NL, IQ4_XS); null for any other type.
const Codec* codecFor(DType type);

// The value of level L on the grid (a, b), exactly as ggml decodes it.
inline float levelValue(const Codec& c, float a, float b, int level)
{
    const float t = c.table ? static_cast<float>(c.table[level]) : static_cast<float>(level + c.offset);
    const float v = a * t;
    return c.asymmetric ? v + b : v;
}

// The level whose value is nearest to x on the grid (a, b) (the lower level on an exact tie of values).
int nearestLevel(const Codec& c, float a, float b, float x);

} // namespace qs::gptq_ggml
