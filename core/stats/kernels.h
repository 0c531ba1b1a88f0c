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
    float min = 0, max = 0; // over finite values; meaningless when finite == 0
    float absmax = 0;       // 0 when finite == 0
    uint64_t finite = 0, zeros = 0, nan = 0, inf = 0;
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
};

// One pass over x[0, n): min, max, counts, and sums of (x - shift)^k for k = 1..order (order 2 or 4),
// the differences taken in double. Non-finite values stand in as `shift` and so add exactly zero.
// With keyTables, also counts every value's key (its top 16 bits) like countKeysF32, in the same pass.
void accumulateBlock(const float* x, size_t n, float shift, int order, BlockSums& out,
                     uint32_t* keyTables = nullptr);

// BF16 data straight from its bit patterns: finite, absmax, s1 and s2 only (min, max and the counts are
// left 0: the bit-pattern table gives them exactly). With keyTables, also counts the patterns.
void accumulateBf16(const uint16_t* x, size_t n, float shift, BlockSums& out, uint32_t* keyTables = nullptr);

// Adds one count per value to tables[(i % kKeyTables) * kKeys + key(x[i])].
void countKeysF32(const float* x, size_t n, uint32_t* tables);   // key: the float's top 16 bits
void countKeys16(const uint16_t* x, size_t n, uint32_t* tables); // key: the 16-bit pattern
void countKeys8(const uint8_t* x, size_t n, uint32_t* tables);   // key: the byte

// bfloat16 / IEEE half bit patterns to float (F16C when the CPU has AVX2).
void bf16ToFloats(const uint16_t* x, size_t n, float* out);
void f16ToFloats(const uint16_t* x, size_t n, float* out);

// Number of finite x[i] with x[i] < lo or x[i] > hi.
uint64_t countOutside(const float* x, size_t n, float lo, float hi);

// Instruction set used by the kernels: the best the CPU has, unless lowered (tests compare the levels).
enum class KernelLevel { Baseline, Avx2, Avx512 };
KernelLevel kernelLevel();
KernelLevel bestKernelLevel();
void setKernelLevel(KernelLevel level); // clamped to bestKernelLevel()
const char* kernelLevelName(KernelLevel level);

#if defined(__x86_64__) && defined(__GNUC__)
#define QS_KERNELS_X86 1
namespace x86 { // kernels_x86.cpp
void accumulateAvx2(const float* x, size_t n, float shift, int order, BlockSums& out, uint32_t* keys);
void accumulateAvx512(const float* x, size_t n, float shift, int order, BlockSums& out, uint32_t* keys);
void accumulateBf16Avx2(const uint16_t* x, size_t n, float shift, BlockSums& out, uint32_t* keys);
void accumulateBf16Avx512(const uint16_t* x, size_t n, float shift, BlockSums& out, uint32_t* keys);
void f16ToFloatsF16c(const uint16_t* x, size_t n, float* out);
} // namespace x86
#else
#define QS_KERNELS_X86 0
#endif

} // namespace qs::detail
