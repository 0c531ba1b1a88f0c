// Block codecs of the ggml types GPTQ quantizes into (see gptq_ggml.h). Level positions follow the loops of
// core/quant/ggml_decode.cpp; scales are read with the same expressions (d * sc, dmin * m ...).
#include "core/quant/gptq_ggml.h"

#include "core/quant/ggml_blocks.h"
#include "core/quant/ggml_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace qs::gptq_ggml {

namespace {

using namespace qs::ggml;
using CBytes = const unsigned char*;
using Bytes = unsigned char*;

template <typename Block> Block load(CBytes p)
{
    return loadBlock<Block>(p);
}
template <typename Block> void store(Bytes p, const Block& b)
{
    std::memcpy(p, &b, sizeof b);
}

// Nibble layout of a 32-value block: byte j holds value j (low) and value j + 16 (high).
void unpackNibbles(const uint8_t* qs, uint8_t* L)
{
    for (int j = 0; j < 16; ++j) {
        L[j] = qs[j] & 0xF;
        L[j + 16] = qs[j] >> 4;
    }
}
void packNibbles(uint8_t* qs, const uint8_t* L)
{
    for (int j = 0; j < 16; ++j)
        qs[j] = static_cast<uint8_t>((L[j] & 0xF) | ((L[j + 16] & 0xF) << 4));
}
// The fifth bit of a Q5_0 / Q5_1 value j in bit j of qh.
void unpackFifth(const uint8_t* qhBytes, uint8_t* L)
{
    uint32_t qh;
    std::memcpy(&qh, qhBytes, 4);
    for (int j = 0; j < 32; ++j)
        L[j] = static_cast<uint8_t>(L[j] | (((qh >> j) & 1u) << 4));
}
void packFifth(uint8_t* qhBytes, const uint8_t* L)
{
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j)
        qh |= static_cast<uint32_t>((L[j] >> 4) & 1u) << j;
    std::memcpy(qhBytes, &qh, 4);
}

// ---- legacy 32-value types ----
template <typename Block> void gridD(CBytes p, float* a, float* b)
{
    const auto blk = load<Block>(p);
    a[0] = halfToFloat(blk.d);
    b[0] = 0.0f;
}
template <typename Block> void gridDM(CBytes p, float* a, float* b)
{
    const auto blk = load<Block>(p);
    a[0] = halfToFloat(blk.d);
    b[0] = halfToFloat(blk.m);
}
template <typename Block> void unpack4(CBytes p, uint8_t* L)
{
    unpackNibbles(load<Block>(p).qs, L);
}
template <typename Block> void pack4(Bytes p, const uint8_t* L)
{
    auto blk = load<Block>(p);
    packNibbles(blk.qs, L);
    store(p, blk);
}
template <typename Block> void unpack5(CBytes p, uint8_t* L)
{
    const auto blk = load<Block>(p);
    unpackNibbles(blk.qs, L);
    unpackFifth(blk.qh, L);
}
template <typename Block> void pack5(Bytes p, const uint8_t* L)
{
    auto blk = load<Block>(p);
    packNibbles(blk.qs, L);
    packFifth(blk.qh, L);
    store(p, blk);
}
void unpackQ8_0(CBytes p, uint8_t* L)
{
    const auto blk = load<BlockQ8_0>(p);
    for (int j = 0; j < kBlock; ++j)
        L[j] = static_cast<uint8_t>(blk.qs[j] + 128);
}
void packQ8_0(Bytes p, const uint8_t* L)
{
    auto blk = load<BlockQ8_0>(p);
    for (int j = 0; j < kBlock; ++j)
        blk.qs[j] = static_cast<int8_t>(int(L[j]) - 128);
    store(p, blk);
}

// ---- Q2_K / Q3_K: value y = 128 * half + 32 * s + 16 * part + l sits in qs[32 * half + y % 32] at bit
// 2 * s (and, for Q3_K, hmask[y % 32] bit 4 * half + s); sub-blocks of 16.
inline int kq2Byte(int y)
{
    return 32 * (y / 128) + y % 32;
}
inline int kq2Shift(int y)
{
    return 2 * ((y % 128) / 32);
}
void gridQ2_K(CBytes p, float* a, float* b)
{
    const auto blk = load<BlockQ2_K>(p);
    const float d = halfToFloat(blk.d), dmin = halfToFloat(blk.dmin);
    for (int is = 0; is < 16; ++is) {
        a[is] = d * static_cast<float>(blk.scales[is] & 0xF);
        b[is] = -(dmin * static_cast<float>(blk.scales[is] >> 4));
    }
}
void unpackQ2_K(CBytes p, uint8_t* L)
{
    const auto blk = load<BlockQ2_K>(p);
    for (int y = 0; y < kSuperBlock; ++y)
        L[y] = (blk.qs[kq2Byte(y)] >> kq2Shift(y)) & 3;
}
void packQ2_K(Bytes p, const uint8_t* L)
{
    auto blk = load<BlockQ2_K>(p);
    std::memset(blk.qs, 0, sizeof blk.qs);
    for (int y = 0; y < kSuperBlock; ++y)
        blk.qs[kq2Byte(y)] = static_cast<uint8_t>(blk.qs[kq2Byte(y)] | ((L[y] & 3) << kq2Shift(y)));
    store(p, blk);
}
inline uint8_t q3Mask(int y)
{
    return static_cast<uint8_t>(1u << (4 * (y / 128) + (y % 128) / 32));
}
void gridQ3_K(CBytes p, float* a, float* b)
{
    const auto blk = load<BlockQ3_K>(p);
    const float d = halfToFloat(blk.d);
    for (int is = 0; is < 16; ++is) {
        a[is] = d * static_cast<float>(unpackScaleQ3K(is, blk.scales));
        b[is] = 0.0f;
    }
}
void unpackQ3_K(CBytes p, uint8_t* L)
{
    const auto blk = load<BlockQ3_K>(p);
    for (int y = 0; y < kSuperBlock; ++y)
        L[y] = static_cast<uint8_t>(((blk.qs[kq2Byte(y)] >> kq2Shift(y)) & 3) |
                                    ((blk.hmask[y % 32] & q3Mask(y)) ? 4 : 0));
}
void packQ3_K(Bytes p, const uint8_t* L)
{
    auto blk = load<BlockQ3_K>(p);
    std::memset(blk.qs, 0, sizeof blk.qs);
    std::memset(blk.hmask, 0, sizeof blk.hmask);
    for (int y = 0; y < kSuperBlock; ++y) {
        blk.qs[kq2Byte(y)] = static_cast<uint8_t>(blk.qs[kq2Byte(y)] | ((L[y] & 3) << kq2Shift(y)));
        if (L[y] & 4)
            blk.hmask[y % 32] = static_cast<uint8_t>(blk.hmask[y % 32] | q3Mask(y));
    }
    store(p, blk);
}

// ---- Q4_K / Q5_K: value y = 64 * pair + 32 * high + l in qs[32 * pair + l] (nibble `high`), fifth bit
// (Q5_K) in qh[l] bit y / 32; sub-blocks of 32.
template <typename Block> void gridK4(CBytes p, float* a, float* b)
{
    const auto blk = load<Block>(p);
    const float d = halfToFloat(blk.d), dmin = halfToFloat(blk.dmin);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        unpackScaleMinK4(j, blk.scales, sc, m);
        a[j] = d * static_cast<float>(sc);
        b[j] = -(dmin * static_cast<float>(m));
    }
}
template <typename Block> void unpackK4(const Block& blk, uint8_t* L)
{
    for (int y = 0; y < kSuperBlock; ++y) {
        const uint8_t q = blk.qs[32 * (y / 64) + y % 32];
        L[y] = (y / 32) % 2 ? q >> 4 : q & 0xF;
    }
}
template <typename Block> void packK4(Block& blk, const uint8_t* L)
{
    for (int y = 0; y < kSuperBlock; y += 64)
        for (int l = 0; l < 32; ++l)
            blk.qs[32 * (y / 64) + l] = static_cast<uint8_t>((L[y + l] & 0xF) | ((L[y + 32 + l] & 0xF) << 4));
}
void unpackQ4_K(CBytes p, uint8_t* L)
{
    unpackK4(load<BlockQ4_K>(p), L);
}
void packQ4_K(Bytes p, const uint8_t* L)
{
    auto blk = load<BlockQ4_K>(p);
    packK4(blk, L);
    store(p, blk);
}
void unpackQ5_K(CBytes p, uint8_t* L)
{
    const auto blk = load<BlockQ5_K>(p);
    unpackK4(blk, L);
    for (int y = 0; y < kSuperBlock; ++y)
        if (blk.qh[y % 32] & (1u << (y / 32)))
            L[y] = static_cast<uint8_t>(L[y] | 16);
}
void packQ5_K(Bytes p, const uint8_t* L)
{
    auto blk = load<BlockQ5_K>(p);
    packK4(blk, L);
    std::memset(blk.qh, 0, sizeof blk.qh);
    for (int y = 0; y < kSuperBlock; ++y)
        if (L[y] & 16)
            blk.qh[y % 32] = static_cast<uint8_t>(blk.qh[y % 32] | (1u << (y / 32)));
    store(p, blk);
}

// ---- Q6_K: value y = 128 * n + 32 * k + l: low 4 bits in ql[64 * n + l + 32 * (k % 2)] (nibble k / 2),
// high 2 bits in qh[32 * n + l] at bit 2 * k (the positions of Q2_K's bits: kq2Byte, kq2Shift); sub-blocks
// of 16.
inline int q6Low(int y)
{
    return 64 * (y / 128) + y % 32 + 32 * ((y % 128) / 32 % 2);
}
inline int q6LowShift(int y)
{
    return 4 * ((y % 128) / 64);
}
void gridQ6_K(CBytes p, float* a, float* b)
{
    const auto blk = load<BlockQ6_K>(p);
    const float d = halfToFloat(blk.d);
    for (int is = 0; is < 16; ++is) {
        a[is] = d * static_cast<float>(blk.scales[is]);
        b[is] = 0.0f;
    }
}
void unpackQ6_K(CBytes p, uint8_t* L)
{
    const auto blk = load<BlockQ6_K>(p);
    for (int y = 0; y < kSuperBlock; ++y)
        L[y] = static_cast<uint8_t>(((blk.ql[q6Low(y)] >> q6LowShift(y)) & 0xF) |
                                    (((blk.qh[kq2Byte(y)] >> kq2Shift(y)) & 3) << 4));
}
void packQ6_K(Bytes p, const uint8_t* L)
{
    auto blk = load<BlockQ6_K>(p);
    std::memset(blk.ql, 0, sizeof blk.ql);
    std::memset(blk.qh, 0, sizeof blk.qh);
    for (int y = 0; y < kSuperBlock; ++y) {
        blk.ql[q6Low(y)] = static_cast<uint8_t>(blk.ql[q6Low(y)] | ((L[y] & 0xF) << q6LowShift(y)));
        blk.qh[kq2Byte(y)] = static_cast<uint8_t>(blk.qh[kq2Byte(y)] | (((L[y] >> 4) & 3) << kq2Shift(y)));
    }
    store(p, blk);
}

// ---- IQ4_XS: sub-block ib of 32 values in qs[16 * ib ..] with the nibble layout of IQ4_NL.
void gridIQ4_XS(CBytes p, float* a, float* b)
{
    const auto blk = load<BlockIQ4_XS>(p);
    const float d = halfToFloat(blk.d);
    for (int ib = 0; ib < 8; ++ib) {
        const int ls = ((blk.scalesL[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((blk.scalesH >> (2 * ib)) & 3) << 4);
        a[ib] = d * static_cast<float>(ls - 32);
        b[ib] = 0.0f;
    }
}
void unpackIQ4_XS(CBytes p, uint8_t* L)
{
    const auto blk = load<BlockIQ4_XS>(p);
    for (int ib = 0; ib < 8; ++ib)
        unpackNibbles(blk.qs + 16 * ib, L + 32 * ib);
}
void packIQ4_XS(Bytes p, const uint8_t* L)
{
    auto blk = load<BlockIQ4_XS>(p);
    for (int ib = 0; ib < 8; ++ib)
        packNibbles(blk.qs + 16 * ib, L + 32 * ib);
    store(p, blk);
}

using namespace qs::ggml::detail;

// clang-format off
const Codec kCodecs[] = {
    {DType::Q4_0, 32, 32, 16, -8, 8, false, nullptr, sizeof(BlockQ4_0), quantizeRowQ4_0,
     gridD<BlockQ4_0>, unpack4<BlockQ4_0>, pack4<BlockQ4_0>},
    {DType::Q4_1, 32, 32, 16, 0, 0, true, nullptr, sizeof(BlockQ4_1), quantizeRowQ4_1,
     gridDM<BlockQ4_1>, unpack4<BlockQ4_1>, pack4<BlockQ4_1>},
    {DType::Q5_0, 32, 32, 32, -16, 16, false, nullptr, sizeof(BlockQ5_0), quantizeRowQ5_0,
     gridD<BlockQ5_0>, unpack5<BlockQ5_0>, pack5<BlockQ5_0>},
    {DType::Q5_1, 32, 32, 32, 0, 0, true, nullptr, sizeof(BlockQ5_1), quantizeRowQ5_1,
     gridDM<BlockQ5_1>, unpack5<BlockQ5_1>, pack5<BlockQ5_1>},
    {DType::Q8_0, 32, 32, 256, -128, 128, false, nullptr, sizeof(BlockQ8_0), quantizeRowQ8_0,
     gridD<BlockQ8_0>, unpackQ8_0, packQ8_0},
    {DType::Q2_K, 256, 16, 4, 0, 0, true, nullptr, sizeof(BlockQ2_K), quantizeRowQ2_K,
     gridQ2_K, unpackQ2_K, packQ2_K},
    {DType::Q3_K, 256, 16, 8, -4, 4, false, nullptr, sizeof(BlockQ3_K), quantizeRowQ3_K,
     gridQ3_K, unpackQ3_K, packQ3_K},
    {DType::Q4_K, 256, 32, 16, 0, 0, true, nullptr, sizeof(BlockQ4_K), quantizeRowQ4_K,
     gridK4<BlockQ4_K>, unpackQ4_K, packQ4_K},
    {DType::Q5_K, 256, 32, 32, 0, 0, true, nullptr, sizeof(BlockQ5_K), quantizeRowQ5_K,
     gridK4<BlockQ5_K>, unpackQ5_K, packQ5_K},
    {DType::Q6_K, 256, 16, 64, -32, 32, false, nullptr, sizeof(BlockQ6_K), quantizeRowQ6_K,
     gridQ6_K, unpackQ6_K, packQ6_K},
    {DType::IQ4_NL, 32, 32, 16, 0, 8, false, kIq4nlValues, sizeof(BlockIQ4_NL), quantizeRowIQ4_NL,
     gridD<BlockIQ4_NL>, unpack4<BlockIQ4_NL>, pack4<BlockIQ4_NL>},
    {DType::IQ4_XS, 256, 32, 16, 0, 8, false, kIq4nlValues, sizeof(BlockIQ4_XS), quantizeRowIQ4_XS,
     gridIQ4_XS, unpackIQ4_XS, packIQ4_XS},
};
// clang-format on

} // namespace

const Codec* codecFor(DType type)
{
    for (const Codec& c : kCodecs)
        if (c.type == type)
            return &c;
    return nullptr;
}

int nearestLevel(const Codec& c, float a, float b, float x)
{
    if (!(a != 0.0f) || !std::isfinite(x))
        return c.zeroLevel; // every level decodes the same (or x has no nearest value)
    const float u = (c.asymmetric ? x - b : x) / a; // x in units of t
    int guess;
    if (c.table) {
        const int8_t* end = c.table + c.levels;
        guess = int(std::lower_bound(c.table, end, u, [](int8_t t, float v) { return float(t) < v; }) - c.table);
    } else {
        const float r = std::nearbyint(u) - static_cast<float>(c.offset);
        guess = !(r == r)                 ? c.zeroLevel
                : r <= 0.0f               ? 0
                : r >= float(c.levels - 1) ? c.levels - 1
                                           : static_cast<int>(r);
    }
    // The candidates around the guess, compared on the exact decoded values.
    int best = -1;
    float bestErr = 0.0f;
    for (int l = std::max(0, guess - 1); l <= std::min(c.levels - 1, guess + 1); ++l) {
        const float e = std::fabs(x - levelValue(c, a, b, l));
        if (best < 0 || e < bestErr) {
            best = l;
            bestErr = e;
        }
    }
    return best;
}

} // namespace qs::gptq_ggml
