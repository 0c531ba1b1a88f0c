// Dequantization of the ggml block types, bit-exact with ggml's to_float: every expression keeps ggml's
// operand order and rounding steps (e.g. Q4_1 is q*d + m, Q6_K is (d*scale)*q), and nothing may be fused
// into an FMA.
#include "core/quant/ggml.h"
#include "core/quant/ggml_blocks.h"
#include "core/util/error.h"

#include <cstring>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace qs::ggml {

namespace {

using Bytes = const unsigned char*;

void decodeQ4_0(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ4_0), y += kBlock) {
        const auto b = loadBlock<BlockQ4_0>(src);
        const float d = halfToFloat(b.d);
        for (int j = 0; j < kBlock / 2; ++j) {
            y[j] = static_cast<float>((b.qs[j] & 0xF) - 8) * d;
            y[j + kBlock / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
        }
    }
}

void decodeQ4_1(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ4_1), y += kBlock) {
        const auto b = loadBlock<BlockQ4_1>(src);
        const float d = halfToFloat(b.d), m = halfToFloat(b.m);
        for (int j = 0; j < kBlock / 2; ++j) {
            y[j] = static_cast<float>(b.qs[j] & 0xF) * d + m;
            y[j + kBlock / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
        }
    }
}

uint32_t load32(const uint8_t* p)
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

void decodeQ5_0(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ5_0), y += kBlock) {
        const auto b = loadBlock<BlockQ5_0>(src);
        const float d = halfToFloat(b.d);
        const uint32_t qh = load32(b.qh);
        for (int j = 0; j < kBlock / 2; ++j) {
            const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
            const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
            y[j] = static_cast<float>(lo - 16) * d;
            y[j + kBlock / 2] = static_cast<float>(hi - 16) * d;
        }
    }
}

void decodeQ5_1(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ5_1), y += kBlock) {
        const auto b = loadBlock<BlockQ5_1>(src);
        const float d = halfToFloat(b.d), m = halfToFloat(b.m);
        const uint32_t qh = load32(b.qh);
        for (int j = 0; j < kBlock / 2; ++j) {
            const int lo = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1) << 4);
            const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
            y[j] = static_cast<float>(lo) * d + m;
            y[j + kBlock / 2] = static_cast<float>(hi) * d + m;
        }
    }
}

void decodeQ8_0(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ8_0), y += kBlock) {
        const auto b = loadBlock<BlockQ8_0>(src);
        const float d = halfToFloat(b.d);
        for (int j = 0; j < kBlock; ++j)
            y[j] = static_cast<float>(b.qs[j]) * d;
    }
}

void decodeQ2_K(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ2_K)) {
        const auto b = loadBlock<BlockQ2_K>(src);
        const float d = halfToFloat(b.d), dmin = halfToFloat(b.dmin);
        int is = 0;
        for (int half = 0; half < 2; ++half) {
            const uint8_t* q = b.qs + 32 * half;
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part, ++is) {
                    const uint8_t sc = b.scales[is];
                    const float dl = d * static_cast<float>(sc & 0xF);
                    const float ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l)
                        *y++ = dl * static_cast<float>((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

void decodeQ3_K(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ3_K)) {
        const auto b = loadBlock<BlockQ3_K>(src);
        const float d = halfToFloat(b.d);
        int is = 0;
        uint8_t mask = 1;
        for (int half = 0; half < 2; ++half) {
            const uint8_t* q = b.qs + 32 * half;
            for (int shift = 0; shift < 8; shift += 2, mask <<= 1) {
                for (int part = 0; part < 2; ++part, ++is) {
                    const float dl = d * static_cast<float>(unpackScaleQ3K(is, b.scales));
                    for (int l = 0; l < 16; ++l) {
                        const int k = l + 16 * part;
                        const int v = ((q[k] >> shift) & 3) - ((b.hmask[k] & mask) ? 0 : 4);
                        *y++ = dl * static_cast<float>(v);
                    }
                }
            }
        }
    }
}

void decodeQ4_K(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ4_K)) {
        const auto b = loadBlock<BlockQ4_K>(src);
        const float d = halfToFloat(b.d), dmin = halfToFloat(b.dmin);
        const uint8_t* q = b.qs;
        for (int j = 0; j < 8; j += 2, q += 32) {
            uint8_t sc, m;
            unpackScaleMinK4(j, b.scales, sc, m);
            const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
            unpackScaleMinK4(j + 1, b.scales, sc, m);
            const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        }
    }
}

void decodeQ5_K(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ5_K)) {
        const auto b = loadBlock<BlockQ5_K>(src);
        const float d = halfToFloat(b.d), dmin = halfToFloat(b.dmin);
        const uint8_t* q = b.qs;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2, q += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            unpackScaleMinK4(j, b.scales, sc, m);
            const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
            unpackScaleMinK4(j + 1, b.scales, sc, m);
            const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * static_cast<float>((q[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * static_cast<float>((q[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

void decodeQ6_K(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockQ6_K)) {
        const auto b = loadBlock<BlockQ6_K>(src);
        const float d = halfToFloat(b.d);
        for (int n = 0; n < 2; ++n, y += 128) {
            const uint8_t* ql = b.ql + 64 * n;
            const uint8_t* qh = b.qh + 32 * n;
            const int8_t* sc = b.scales + 8 * n;
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
    }
}

void decodeIQ4_NL(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockIQ4_NL), y += kBlock) {
        const auto b = loadBlock<BlockIQ4_NL>(src);
        const float d = halfToFloat(b.d);
        for (int j = 0; j < kBlock / 2; ++j) {
            y[j] = d * static_cast<float>(kIq4nlValues[b.qs[j] & 0xF]);
            y[j + kBlock / 2] = d * static_cast<float>(kIq4nlValues[b.qs[j] >> 4]);
        }
    }
}

void decodeIQ4_XS(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockIQ4_XS)) {
        const auto b = loadBlock<BlockIQ4_XS>(src);
        const float d = halfToFloat(b.d);
        const uint8_t* qs = b.qs;
        for (int ib = 0; ib < kSuperBlock / 32; ++ib, qs += 16, y += 32) {
            const int ls =
                ((b.scalesL[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b.scalesH >> (2 * ib)) & 3) << 4);
            const float dl = d * static_cast<float>(ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * static_cast<float>(kIq4nlValues[qs[j] & 0xF]);
                y[j + 16] = dl * static_cast<float>(kIq4nlValues[qs[j] >> 4]);
            }
        }
    }
}

void decodeMXFP4(Bytes src, uint64_t blocks, float* y)
{
    for (uint64_t i = 0; i < blocks; ++i, src += sizeof(BlockMXFP4), y += kBlock) {
        const auto b = loadBlock<BlockMXFP4>(src);
        const float d = e8m0Half(b.e);
        for (int j = 0; j < kBlock / 2; ++j) {
            y[j] = static_cast<float>(kMxfp4Values[b.qs[j] & 0xF]) * d;
            y[j + kBlock / 2] = static_cast<float>(kMxfp4Values[b.qs[j] >> 4]) * d;
        }
    }
}

void decodeF32(Bytes src, uint64_t n, float* y)
{
    std::memcpy(y, src, n * 4);
}

void decodeF16(Bytes src, uint64_t n, float* y)
{
    for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        y[i] = halfToFloat(h);
    }
}

void decodeBF16(Bytes src, uint64_t n, float* y)
{
    for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        y[i] = bf16ToFloat(h);
    }
}

using DecodeFn = void (*)(Bytes, uint64_t, float*);

DecodeFn decoderFor(DType type)
{
    // clang-format off
    switch (type) {
    case DType::F32: return decodeF32;
    case DType::F16: return decodeF16;
    case DType::BF16: return decodeBF16;
    case DType::Q4_0: return decodeQ4_0;
    case DType::Q4_1: return decodeQ4_1;
    case DType::Q5_0: return decodeQ5_0;
    case DType::Q5_1: return decodeQ5_1;
    case DType::Q8_0: return decodeQ8_0;
    case DType::Q2_K: return decodeQ2_K;
    case DType::Q3_K: return decodeQ3_K;
    case DType::Q4_K: return decodeQ4_K;
    case DType::Q5_K: return decodeQ5_K;
    case DType::Q6_K: return decodeQ6_K;
    case DType::IQ4_NL: return decodeIQ4_NL;
    case DType::IQ4_XS: return decodeIQ4_XS;
    case DType::MXFP4: return decodeMXFP4;
    default: return nullptr;
    }
    // clang-format on
}

} // namespace

bool canDecode(DType type)
{
    return decoderFor(type) != nullptr;
}

void decode(DType type, const void* src, uint64_t n, float* dst)
{
    const DecodeFn fn = decoderFor(type);
    if (!fn)
        throw Error(ErrorCode::Unsupported, std::string("cannot decode ") + dtypeName(type));
    // dtypeInfo() asks canDecode() while it builds its table, so read the block size from a constant
    // rather than from dtypeInfo() here.
    uint64_t blockElements = kBlock;
    if (type == DType::F32 || type == DType::F16 || type == DType::BF16)
        blockElements = 1;
    else if (type == DType::Q2_K || type == DType::Q3_K || type == DType::Q4_K || type == DType::Q5_K ||
             type == DType::Q6_K || type == DType::IQ4_XS)
        blockElements = kSuperBlock;
    if (n % blockElements != 0)
        throw Error(ErrorCode::BadValue, std::string("decode: ") + std::to_string(n) +
                                             " values is not a whole number of " + dtypeName(type) +
                                             " blocks");
    fn(static_cast<Bytes>(src), n / blockElements, dst);
}

} // namespace qs::ggml
