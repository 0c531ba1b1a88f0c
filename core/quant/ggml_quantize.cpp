// The public quantize() dispatch and the legacy block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0). Without
// importance these reproduce ggml's reference quantizers byte for byte; with importance they run ggml's
// weighted searches. Conversions of non-finite input never invoke undefined behaviour: NaN and infinity
// produce some valid block, never a crash.
#include "core/quant/ggml.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/ggml_rows.h"
#include "core/quant/ggml_search.h"
#include "core/quant/ggml_vec.h"
#include "core/util/checked.h"
#include "core/util/error.h"

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace qs::ggml {

namespace detail {

namespace {

// min(maxLevel, (int)v) as ggml writes it for v in [0, maxLevel + 1.5], defined for every float.
int truncLevel(float v, int maxLevel)
{
    if (!(v > 0))
        return 0;
    if (v >= static_cast<float>(maxLevel))
        return maxLevel;
    return static_cast<int>(v);
}

// roundf() to int8 (half away from zero), saturating, NaN -> 0. Truncation plus an exact remainder test
// is roundf for |v| < 2^23 and much cheaper than the libm call.
int8_t roundToInt8(float v)
{
    if (!(v > -128.0f))
        return v == v ? int8_t(-128) : int8_t(0);
    if (!(v < 127.0f))
        return 127;
    const int i = static_cast<int>(v);
    const float frac = v - static_cast<float>(i); // exact
    return static_cast<int8_t>(i + static_cast<int>(frac >= 0.5f) - static_cast<int>(frac <= -0.5f));
}

template <typename Block> void storeBlock(unsigned char* dst, const Block& b)
{
    std::memcpy(dst, &b, sizeof b);
}

// Signed absolute maximum: the value with the largest magnitude, first one on ties.
float signedAbsMax(const float* x, int n)
{
    float amax = 0, max = 0;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

void minMax(const float* x, int n, float& min, float& max)
{
    min = FLT_MAX;
    max = -FLT_MAX;
    for (int j = 0; j < n; ++j) {
        if (x[j] < min)
            min = x[j];
        if (x[j] > max)
            max = x[j];
    }
}

// sum(x^2) / n over the whole row: the variance term of the importance weights.
float rowSigma2(const float* x, int64_t n)
{
    float sum = 0;
    for (int64_t j = 0; j < n; ++j)
        sum += x[j] * x[j];
    return sum / static_cast<float>(n);
}

void importanceWeights(const float* x, const float* qw, float sigma2, int n, float* weight)
{
    for (int j = 0; j < n; ++j)
        weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

void packFiveBits(const uint8_t* L, uint8_t* qs, uint8_t* qhBytes)
{
    uint32_t qh = 0;
    for (int j = 0; j < kBlock / 2; ++j) {
        const uint8_t lo = L[j], hi = L[j + kBlock / 2];
        qs[j] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
        qh |= static_cast<uint32_t>((lo & 0x10u) >> 4) << j;
        qh |= static_cast<uint32_t>((hi & 0x10u) >> 4) << (j + kBlock / 2);
    }
    std::memcpy(qhBytes, &qh, 4);
}

// The importance-weighted Q4_0 / Q5_0 search (makeQxQuants) over the nb blocks of a row, eight blocks
// at a time through the batched search, the rest one by one. emit(block, d, levels).
template <typename Emit>
void weightedSymBlocks(const float* x, int64_t nb, const float* importance, float sigma2, int nmax,
                       Emit&& emit)
{
    constexpr int kBatch = 8;
    float weight[kBatch * kBlock], d[kBatch];
    int8_t L[kBatch * kBlock];
    int64_t i = 0;
    for (; i + kBatch <= nb; i += kBatch) {
        for (int k = 0; k < kBatch; ++k)
            importanceWeights(x + (i + k) * kBlock, importance + (i + k) * kBlock, sigma2, kBlock,
                              weight + k * kBlock);
        makeQxQuantsBatch<kBatch>(kBlock, nmax, x + i * kBlock, weight, L, d);
        for (int k = 0; k < kBatch; ++k)
            emit(i + k, d[k], L + k * kBlock);
    }
    for (; i < nb; ++i) {
        importanceWeights(x + i * kBlock, importance + i * kBlock, sigma2, kBlock, weight);
        emit(i, makeQxQuants(kBlock, nmax, x + i * kBlock, L, 1, weight), L);
    }
}

// The importance-weighted Q4_1 / Q5_1 search (makeQkx3Quants) over the nb blocks of a row: eight
// blocks at a time through the batched search, the rest one by one. emit(block, d, negMin, levels).
template <typename Emit>
void weightedAsymBlocks(const float* x, int64_t nb, const float* importance, float sigma2, int nmax,
                        Emit&& emit)
{
    constexpr int kBatch = 8;
    float weight[kBatch * kBlock], d[kBatch], negMin[kBatch];
    uint8_t L[kBatch * kBlock], Laux[kBlock];
    int64_t i = 0;
    for (; i + kBatch <= nb; i += kBatch) {
        for (int k = 0; k < kBatch; ++k)
            importanceWeights(x + (i + k) * kBlock, importance + (i + k) * kBlock, sigma2, kBlock,
                              weight + k * kBlock);
        makeQkxQuantsBatch<kBatch>(true, kBlock, nmax, x + i * kBlock, weight, L, d, negMin, -0.9f, 0.05f, 36,
                                   false);
        for (int k = 0; k < kBatch; ++k)
            emit(i + k, d[k], negMin[k], L + k * kBlock);
    }
    for (; i < nb; ++i) {
        importanceWeights(x + i * kBlock, importance + i * kBlock, sigma2, kBlock, weight);
        d[0] = makeQkx3Quants(kBlock, nmax, x + i * kBlock, weight, L, &negMin[0], Laux, -0.9f, 0.05f, 36,
                              false);
        emit(i, d[0], negMin[0], L);
    }
}

} // namespace

void quantizeRowQ4_0(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    const int64_t nb = n / kBlock;
    if (!importance) {
        if (quantizeRowQ4_0Vec(x, n, dst))
            return;
        // The scalar reference (ggml's quantize_row_q4_0_ref), kept for the tests and non-x86 builds.
        for (int64_t i = 0; i < nb; ++i, x += kBlock, dst += sizeof(BlockQ4_0)) {
            const float d = signedAbsMax(x, kBlock) / -8;
            const float id = d ? 1.0f / d : 0.0f;
            BlockQ4_0 b;
            b.d = floatToHalf(d);
            for (int j = 0; j < kBlock / 2; ++j) {
                const int lo = truncLevel(x[j] * id + 8.5f, 15);
                const int hi = truncLevel(x[j + kBlock / 2] * id + 8.5f, 15);
                b.qs[j] = static_cast<uint8_t>(lo | (hi << 4));
            }
            storeBlock(dst, b);
        }
        return;
    }
    weightedSymBlocks(x, nb, importance, rowSigma2(x, n), 8, [&](int64_t i, float d, const int8_t* L) {
        BlockQ4_0 b;
        b.d = floatToHalf(d);
        for (int j = 0; j < kBlock / 2; ++j)
            b.qs[j] = static_cast<uint8_t>(L[j] | (L[j + kBlock / 2] << 4));
        storeBlock(dst + i * sizeof(BlockQ4_0), b);
    });
}

void quantizeRowQ4_1(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    const int64_t nb = n / kBlock;
    if (!importance) {
        if (quantizeRowQ4_1Vec(x, n, dst))
            return;
        // The scalar reference (ggml's quantize_row_q4_1_ref).
        for (int64_t i = 0; i < nb; ++i, x += kBlock, dst += sizeof(BlockQ4_1)) {
            float min, max;
            minMax(x, kBlock, min, max);
            const float d = (max - min) / 15;
            const float id = d ? 1.0f / d : 0.0f;
            BlockQ4_1 b;
            b.d = floatToHalf(d);
            b.m = floatToHalf(min);
            for (int j = 0; j < kBlock / 2; ++j) {
                const int lo = truncLevel((x[j] - min) * id + 0.5f, 15);
                const int hi = truncLevel((x[j + kBlock / 2] - min) * id + 0.5f, 15);
                b.qs[j] = static_cast<uint8_t>(lo | (hi << 4));
            }
            storeBlock(dst, b);
        }
        return;
    }
    weightedAsymBlocks(x, nb, importance, rowSigma2(x, n), 15,
                       [&](int64_t i, float d, float negMin, const uint8_t* L) {
                           BlockQ4_1 b;
                           b.d = floatToHalf(d);
                           b.m = floatToHalf(-negMin);
                           for (int j = 0; j < kBlock / 2; ++j)
                               b.qs[j] = static_cast<uint8_t>(L[j] | (L[j + kBlock / 2] << 4));
                           storeBlock(dst + i * sizeof(BlockQ4_1), b);
                       });
}

void quantizeRowQ5_0(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    const int64_t nb = n / kBlock;
    uint8_t L[kBlock];
    if (!importance) {
        if (quantizeRowQ5_0Vec(x, n, dst))
            return;
        // The scalar reference (ggml's quantize_row_q5_0_ref).
        for (int64_t i = 0; i < nb; ++i, x += kBlock, dst += sizeof(BlockQ5_0)) {
            const float d = signedAbsMax(x, kBlock) / -16;
            const float id = d ? 1.0f / d : 0.0f;
            BlockQ5_0 b;
            b.d = floatToHalf(d);
            for (int j = 0; j < kBlock; ++j)
                L[j] = static_cast<uint8_t>(truncLevel(x[j] * id + 16.5f, 31));
            packFiveBits(L, b.qs, b.qh);
            storeBlock(dst, b);
        }
        return;
    }
    weightedSymBlocks(x, nb, importance, rowSigma2(x, n), 16, [&](int64_t i, float d, const int8_t* Ls) {
        BlockQ5_0 b;
        b.d = floatToHalf(d);
        uint8_t levels[kBlock];
        for (int j = 0; j < kBlock; ++j)
            levels[j] = static_cast<uint8_t>(Ls[j]);
        packFiveBits(levels, b.qs, b.qh);
        storeBlock(dst + i * sizeof(BlockQ5_0), b);
    });
}

void quantizeRowQ5_1(const float* x, int64_t n, unsigned char* dst, const float* importance)
{
    const int64_t nb = n / kBlock;
    uint8_t L[kBlock];
    if (!importance) {
        if (quantizeRowQ5_1Vec(x, n, dst))
            return;
        // The scalar reference (ggml's quantize_row_q5_1_ref).
        for (int64_t i = 0; i < nb; ++i, x += kBlock, dst += sizeof(BlockQ5_1)) {
            float min, max;
            minMax(x, kBlock, min, max);
            const float d = (max - min) / 31;
            const float id = d ? 1.0f / d : 0.0f;
            BlockQ5_1 b;
            b.d = floatToHalf(d);
            b.m = floatToHalf(min);
            for (int j = 0; j < kBlock; ++j)
                L[j] = static_cast<uint8_t>(truncLevel((x[j] - min) * id + 0.5f, 31));
            packFiveBits(L, b.qs, b.qh);
            storeBlock(dst, b);
        }
        return;
    }
    weightedAsymBlocks(x, nb, importance, rowSigma2(x, n), 31,
                       [&](int64_t i, float d, float negMin, const uint8_t* L) {
                           BlockQ5_1 b;
                           b.d = floatToHalf(d);
                           b.m = floatToHalf(-negMin);
                           packFiveBits(L, b.qs, b.qh);
                           storeBlock(dst + i * sizeof(BlockQ5_1), b);
                       });
}

void quantizeRowQ8_0(const float* x, int64_t n, unsigned char* dst, const float*)
{
    // ggml has no importance-weighted Q8_0 either; importance is ignored.
    const int64_t nb = n / kBlock;
    for (int64_t i = 0; i < nb; ++i, x += kBlock, dst += sizeof(BlockQ8_0)) {
        float amax = 0;
        for (int j = 0; j < kBlock; ++j)
            amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        BlockQ8_0 b;
        b.d = floatToHalf(d);
        for (int j = 0; j < kBlock; ++j)
            b.qs[j] = roundToInt8(x[j] * id);
        storeBlock(dst, b);
    }
}

} // namespace detail

namespace {

using RowFn = void (*)(const float*, int64_t, unsigned char*, const float*);

void rowF32(const float* x, int64_t n, unsigned char* dst, const float*)
{
    std::memcpy(dst, x, n * 4);
}
void rowF16(const float* x, int64_t n, unsigned char* dst, const float*)
{
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = toHalfFast(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
    }
}
void rowBF16(const float* x, int64_t n, unsigned char* dst, const float*)
{
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = floatToBf16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
    }
}

RowFn rowQuantizer(DType type)
{
    // clang-format off
    using namespace detail;
    switch (type) {
    case DType::F32: return rowF32;
    case DType::F16: return rowF16;
    case DType::BF16: return rowBF16;
    case DType::Q4_0: return quantizeRowQ4_0;
    case DType::Q4_1: return quantizeRowQ4_1;
    case DType::Q5_0: return quantizeRowQ5_0;
    case DType::Q5_1: return quantizeRowQ5_1;
    case DType::Q8_0: return quantizeRowQ8_0;
    case DType::Q2_K: return quantizeRowQ2_K;
    case DType::Q3_K: return quantizeRowQ3_K;
    case DType::Q4_K: return quantizeRowQ4_K;
    case DType::Q5_K: return quantizeRowQ5_K;
    case DType::Q6_K: return quantizeRowQ6_K;
    case DType::IQ4_NL: return quantizeRowIQ4_NL;
    case DType::IQ4_XS: return quantizeRowIQ4_XS;
    case DType::MXFP4: return quantizeRowMXFP4;
    default: return nullptr;
    }
    // clang-format on
}

} // namespace

bool canQuantize(DType type)
{
    return rowQuantizer(type) != nullptr;
}

uint64_t quantize(DType type, const float* src, uint64_t rows, uint64_t rowLength, void* dst,
                  const float* importance)
{
    const RowFn fn = rowQuantizer(type);
    if (!fn)
        throw Error(ErrorCode::Unsupported, std::string("cannot quantize to ") + dtypeName(type));
    const auto rowBytes = dtypeByteSize(type, rowLength);
    if (!rowBytes || rowLength == 0 || rowLength > static_cast<uint64_t>(INT64_MAX))
        throw Error(ErrorCode::BadValue, std::string("quantize: row length ") + std::to_string(rowLength) +
                                             " is not a positive multiple of the " + dtypeName(type) +
                                             " block size");
    const auto total = checkedMul(*rowBytes, rows);
    if (!total)
        throw Error(ErrorCode::Overflow, "quantize: output size overflows");
    auto* out = static_cast<unsigned char*>(dst);
    for (uint64_t r = 0; r < rows; ++r)
        fn(src + r * rowLength, static_cast<int64_t>(rowLength), out + r * *rowBytes, importance);
    return *total;
}

} // namespace qs::ggml
