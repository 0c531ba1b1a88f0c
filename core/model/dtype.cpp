#include "core/model/dtype.h"

#include "core/quant/ggml.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/strings.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

namespace qs {

namespace {

// decodable for block types is filled in from ggml::canDecode at lookup time.
constexpr std::array<DTypeInfo, static_cast<size_t>(DType::Count)> kTypes = {{
    {DType::F64, "F64", 1, 8, -1, true},
    {DType::F32, "F32", 1, 4, 0, true},
    {DType::F16, "F16", 1, 2, 1, true},
    {DType::BF16, "BF16", 1, 2, 30, true},
    {DType::F8_E4M3, "F8_E4M3", 1, 1, -1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, 1, -1, true},
    {DType::I64, "I64", 1, 8, -1, true},
    {DType::I32, "I32", 1, 4, -1, true},
    {DType::I16, "I16", 1, 2, -1, true},
    {DType::I8, "I8", 1, 1, -1, true},
    {DType::U64, "U64", 1, 8, -1, true},
    {DType::U32, "U32", 1, 4, -1, true},
    {DType::U16, "U16", 1, 2, -1, true},
    {DType::U8, "U8", 1, 1, -1, true},
    {DType::Bool, "BOOL", 1, 1, -1, true},
    {DType::Q4_0, "Q4_0", 32, 18, 2, false},
    {DType::Q4_1, "Q4_1", 32, 20, 3, false},
    {DType::Q5_0, "Q5_0", 32, 22, 6, false},
    {DType::Q5_1, "Q5_1", 32, 24, 7, false},
    {DType::Q8_0, "Q8_0", 32, 34, 8, false},
    {DType::Q8_1, "Q8_1", 32, 36, 9, false},
    {DType::Q2_K, "Q2_K", 256, 84, 10, false},
    {DType::Q3_K, "Q3_K", 256, 110, 11, false},
    {DType::Q4_K, "Q4_K", 256, 144, 12, false},
    {DType::Q5_K, "Q5_K", 256, 176, 13, false},
    {DType::Q6_K, "Q6_K", 256, 210, 14, false},
    {DType::Q8_K, "Q8_K", 256, 292, 15, false},
    {DType::IQ2_XXS, "IQ2_XXS", 256, 66, 16, false},
    {DType::IQ2_XS, "IQ2_XS", 256, 74, 17, false},
    {DType::IQ3_XXS, "IQ3_XXS", 256, 98, 18, false},
    {DType::IQ1_S, "IQ1_S", 256, 50, 19, false},
    {DType::IQ4_NL, "IQ4_NL", 32, 18, 20, false},
    {DType::IQ3_S, "IQ3_S", 256, 110, 21, false},
    {DType::IQ2_S, "IQ2_S", 256, 82, 22, false},
    {DType::IQ4_XS, "IQ4_XS", 256, 136, 23, false},
    {DType::I8_GGML, "I8", 1, 1, 24, true},
    {DType::I16_GGML, "I16", 1, 2, 25, true},
    {DType::I32_GGML, "I32", 1, 4, 26, true},
    {DType::I64_GGML, "I64", 1, 8, 27, true},
    {DType::F64_GGML, "F64", 1, 8, 28, true},
    {DType::IQ1_M, "IQ1_M", 256, 56, 29, false},
    {DType::TQ1_0, "TQ1_0", 256, 54, 34, false},
    {DType::TQ2_0, "TQ2_0", 256, 66, 35, false},
    {DType::MXFP4, "MXFP4", 32, 17, 39, false},
    {DType::Packed, "PACKED", 1, 1, -1, true}, // decoded by Model::decode through TensorInfo::packed
}};

static_assert([] {
    for (size_t i = 0; i < kTypes.size(); ++i)
        if (static_cast<size_t>(kTypes[i].type) != i)
            return false;
    return true;
}());

bool plainType(DType t) { return kTypes[static_cast<size_t>(t)].blockElements == 1; }

DType canonicalPlain(DType t)
{
    switch (t) {
    case DType::I8_GGML: return DType::I8;
    case DType::I16_GGML: return DType::I16;
    case DType::I32_GGML: return DType::I32;
    case DType::I64_GGML: return DType::I64;
    case DType::F64_GGML: return DType::F64;
    default: return t;
    }
}

template <typename T> T load(const unsigned char* p)
{
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

float fp8e4m3ToFloat(uint8_t b)
{
    // OCP FP8 E4M3 (fn): bias 7, no infinities, S.1111.111 is NaN.
    const int sign = b >> 7, exp = (b >> 3) & 0xF, man = b & 7;
    float v;
    if (exp == 0xF && man == 7)
        v = std::nanf("");
    else if (exp == 0)
        v = std::ldexp(static_cast<float>(man), -9);
    else
        v = std::ldexp(1.0f + man / 8.0f, exp - 7);
    return sign ? -v : v;
}

} // namespace

float halfToFloat(uint16_t h);

namespace {

float fp8e5m2ToFloat(uint8_t b)
{
    // E5M2 is the top byte of an IEEE half.
    return halfToFloat(static_cast<uint16_t>(b) << 8);
}

} // namespace

const DTypeInfo& dtypeInfo(DType type)
{
    static const std::array<DTypeInfo, static_cast<size_t>(DType::Count)> table = [] {
        auto t = kTypes;
        for (auto& info : t)
            if (info.blockElements > 1 || info.type == DType::MXFP4)
                info.decodable = ggml::canDecode(info.type);
        return t;
    }();
    const auto i = static_cast<size_t>(type);
    if (i >= table.size())
        throw Error(ErrorCode::Internal, "invalid dtype");
    return table[i];
}

double dtypeBitsPerWeight(DType type)
{
    const auto& info = dtypeInfo(type);
    return info.blockBytes * 8.0 / info.blockElements;
}

std::optional<DType> dtypeFromName(std::string_view name)
{
    for (const auto& info : kTypes)
        if (equalsNoCase(info.name, name))
            return info.type;
    return std::nullopt;
}

std::optional<DType> dtypeFromGgmlType(uint32_t ggmlType)
{
    for (const auto& info : kTypes)
        if (info.ggmlType >= 0 && static_cast<uint32_t>(info.ggmlType) == ggmlType)
            return info.type;
    return std::nullopt;
}

std::optional<uint64_t> dtypeByteSize(DType type, uint64_t elements)
{
    const auto& info = dtypeInfo(type);
    if (elements % info.blockElements != 0)
        return std::nullopt;
    return checkedMul(elements / info.blockElements, info.blockBytes);
}

float halfToFloat(uint16_t h)
{
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: normalise
            int e = -1;
            do {
                ++e;
                man <<= 1;
            } while ((man & 0x400) == 0);
            bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3FF) << 13;
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    return std::bit_cast<float>(bits);
}

uint16_t floatToHalf(float f)
{
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t absx = x & 0x7FFFFFFF;
    if (absx >= 0x7F800000) // inf or NaN
        return static_cast<uint16_t>(sign | 0x7C00 | (absx > 0x7F800000 ? 0x200 : 0));
    if (absx >= 0x477FF000) // rounds to >= 65520: overflow to inf
        return static_cast<uint16_t>(sign | 0x7C00);
    if (absx < 0x38800000) { // subnormal half (or zero)
        // value / 2^-24, rounded to nearest even
        const float scaled = std::bit_cast<float>(absx) * 16777216.0f;
        const auto m = static_cast<uint32_t>(std::nearbyint(scaled));
        return static_cast<uint16_t>(sign | m);
    }
    const uint32_t exp = ((absx >> 23) - 127 + 15);
    uint32_t man = absx & 0x7FFFFF;
    uint32_t h = (exp << 10) | (man >> 13);
    const uint32_t rest = man & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        ++h; // may carry into the exponent, which is the correct result
    return static_cast<uint16_t>(sign | h);
}

float bf16ToFloat(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t floatToBf16(float f)
{
    uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7FFFFFFF) > 0x7F800000)
        return static_cast<uint16_t>((x >> 16) | 0x40); // quiet NaN
    x += 0x7FFF + ((x >> 16) & 1);
    return static_cast<uint16_t>(x >> 16);
}

void decodeToFloat(DType type, const void* srcv, uint64_t n, float* dst)
{
    if (n == 0)
        return; // an empty tensor may have no data and no buffer (null pointers: memcpy must not see them)
    const auto* src = static_cast<const unsigned char*>(srcv);
    type = canonicalPlain(type);
    if (!plainType(type)) {
        ggml::decode(type, src, n, dst);
        return;
    }
    switch (type) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<double>(src + 8 * i)); return;
    case DType::F16: for (uint64_t i = 0; i < n; ++i) dst[i] = halfToFloat(load<uint16_t>(src + 2 * i)); return;
    case DType::BF16:
        for (uint64_t i = 0; i < n; ++i)
            dst[i] = std::bit_cast<float>(static_cast<uint32_t>(load<uint16_t>(src + 2 * i)) << 16);
        return;
    case DType::F8_E4M3: for (uint64_t i = 0; i < n; ++i) dst[i] = fp8e4m3ToFloat(src[i]); return;
    case DType::F8_E5M2: for (uint64_t i = 0; i < n; ++i) dst[i] = fp8e5m2ToFloat(src[i]); return;
    case DType::I64: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int64_t>(src + 8 * i)); return;
    case DType::I32: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int32_t>(src + 4 * i)); return;
    case DType::I16: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int16_t>(src + 2 * i)); return;
    case DType::I8: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(static_cast<int8_t>(src[i])); return;
    case DType::U64: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<uint64_t>(src + 8 * i)); return;
    case DType::U32: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<uint32_t>(src + 4 * i)); return;
    case DType::U16: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<uint16_t>(src + 2 * i)); return;
    case DType::U8: for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]); return;
    case DType::Bool: for (uint64_t i = 0; i < n; ++i) dst[i] = src[i] ? 1.0f : 0.0f; return;
    default: break;
    }
    throw Error(ErrorCode::Unsupported, std::string("cannot decode ") + dtypeName(type));
}

} // namespace qs
