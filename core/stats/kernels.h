#pragma once
// Inner loops of the statistics engine, separated so that they can be compiled for several instruction
// sets (baseline x86-64, AVX2, AVX-512) and dispatched at load time. Everything here works on one block
// of a tensor that sits in cache; the engine (stats.cpp) feeds blocks and merges the results.

#include <cstddef>
#include <cstdint>

namespace qs::detail {

// Key tables: kKeyTables interleaved count tables of 65536 entries. Consecutive elements go to different
// tables so that runs of equal values do not serialise on one counter; the engine adds them up.
inline constexpr size_t kKeyTables = 4;
inline constexpr size_t kKeys = 65536;

// Per-block results over a block of floats. Moments are sums of powers of (x - shift) over finite values.
struct BlockSums {
    float min = 0, max = 0;       // over finite values; meaningless when finite == 0
    uint64_t finite = 0, zeros = 0, nan = 0, inf = 0;
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
};

// One pass over x[0, n): min, max, counts, and sums of (x - shift)^k for k = 1..order (order 2 or 4),
// the differences taken in double. Non-finite values stand in as `shift` and so add exactly zero.
void accumulateBlock(const float* x, size_t n, float shift, int order, BlockSums& out);

// Adds one count per value to tables[(i % kKeyTables) * kKeys + key(x[i])].
void countKeysF32(const float* x, size_t n, uint32_t* tables);   // key: the float's top 16 bits
void countKeys16(const uint16_t* x, size_t n, uint32_t* tables); // key: the 16-bit pattern
void countKeys8(const uint8_t* x, size_t n, uint32_t* tables);   // key: the byte

// bfloat16 bit patterns to float.
void bf16ToFloats(const uint16_t* x, size_t n, float* out);

// Number of finite x[i] with x[i] < lo or x[i] > hi.
uint64_t countOutside(const float* x, size_t n, float lo, float hi);

} // namespace qs::detail
