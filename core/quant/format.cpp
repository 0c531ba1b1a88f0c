// The built-in quantization formats and their registry.
#include "core/quant/format.h"

#include "core/quant/fp8.h"
#include "core/quant/ggml.h"
#include "core/quant/int_quant.h"
#include "core/quant/nf4.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/strings.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

namespace qs {

namespace {

std::vector<float> sortedUnique(std::vector<float> v)
{
    v.erase(std::remove_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); }), v.end());
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

void minMaxOf(const float* v, size_t n, float& lo, float& hi)
{
    lo = 0;
    hi = 0;
    for (size_t i = 0; i < n; ++i) {
        lo = std::min(lo, v[i]);
        hi = std::max(hi, v[i]);
    }
}

// ---- BF16 / F16: the "keep" tiers ----

class FloatFormat final : public QuantFormat {
public:
    explicit FloatFormat(DType type) : m_type(type)
    {
        m_traits.name = dtypeName(type);
        m_traits.kind = FormatKind::Float;
        m_traits.bits = 16;
        m_traits.groupSize = 0;
        m_traits.storage = type;
        m_traits.layout = type == DType::BF16 ? "bfloat16, 2 bytes per weight (round to nearest even)"
                                              : "IEEE half, 2 bytes per weight (round to nearest even)";
    }
    const FormatTraits& traits() const override { return m_traits; }
    bool supports(uint64_t rows, uint64_t cols) const override { return rows > 0 && cols > 0; }
    std::optional<uint64_t> storedBytes(uint64_t rows, uint64_t cols) const override
    {
        auto n = checkedMul(rows, cols);
        return n && *n ? checkedMul(*n, 2) : std::nullopt;
    }
    void roundTrip(const float* src, uint64_t rows, uint64_t cols, float* out, const float*) const override
    {
        const uint64_t n = rows * cols;
        if (m_type == DType::BF16)
            for (uint64_t i = 0; i < n; ++i)
                out[i] = bf16ToFloat(floatToBf16(src[i]));
        else
            for (uint64_t i = 0; i < n; ++i)
                out[i] = halfToFloat(floatToHalf(src[i]));
    }
    std::vector<float> gridLevels(const float*, size_t) const override { return {}; }

private:
    DType m_type;
    FormatTraits m_traits;
};

// ---- ggml block types ----

int ggmlBits(DType t)
{
    switch (t) {
    case DType::Q8_0:
        return 8;
    case DType::Q6_K:
        return 6;
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q5_K:
        return 5;
    case DType::Q3_K:
        return 3;
    case DType::Q2_K:
        return 2;
    default:
        return 4;
    }
}

bool ggmlSymmetric(DType t)
{
    return !(t == DType::Q4_1 || t == DType::Q5_1 || t == DType::Q2_K || t == DType::Q4_K ||
             t == DType::Q5_K);
}

class GgmlFormat final : public QuantFormat {
public:
    explicit GgmlFormat(DType type) : m_type(type)
    {
        const auto& info = dtypeInfo(type);
        m_traits.name = info.name;
        m_traits.kind = type == DType::MXFP4 ? FormatKind::Mx : FormatKind::Ggml;
        m_traits.bits = ggmlBits(type);
        m_traits.groupSize = static_cast<int>(info.blockElements);
        m_traits.symmetric = ggmlSymmetric(type);
        m_traits.storage = type;
        m_traits.layout = "ggml block: " + std::to_string(info.blockBytes) + " bytes per " +
                          std::to_string(info.blockElements) + " weights along a row";
        if (type == DType::MXFP4)
            m_traits.layout += " (OCP MXFP4: E2M1 values, E8M0 scale per 32)";
    }
    const FormatTraits& traits() const override { return m_traits; }
    bool available() const override { return ggml::canQuantize(m_type) && ggml::canDecode(m_type); }
    bool supports(uint64_t rows, uint64_t cols) const override
    {
        return rows > 0 && cols > 0 && cols % dtypeInfo(m_type).blockElements == 0;
    }
    std::optional<uint64_t> storedBytes(uint64_t rows, uint64_t cols) const override
    {
        if (!supports(rows, cols))
            return std::nullopt;
        auto n = checkedMul(rows, cols);
        return n ? dtypeByteSize(m_type, *n) : std::nullopt;
    }
    void roundTrip(const float* src, uint64_t rows, uint64_t cols, float* out,
                   const float* importance) const override
    {
        auto bytes = storedBytes(rows, cols);
        if (!bytes)
            throw Error(ErrorCode::BadValue, m_traits.name + " needs a row length that is a multiple of " +
                                                 std::to_string(dtypeInfo(m_type).blockElements));
        std::vector<unsigned char> buffer(*bytes);
        ggml::quantize(m_type, src, rows, cols, buffer.data(), importance);
        ggml::decode(m_type, buffer.data(), rows * cols, out);
    }
    std::vector<float> gridLevels(const float* values, size_t count) const override;

private:
    DType m_type;
    FormatTraits m_traits;
};

std::vector<float> GgmlFormat::gridLevels(const float* values, size_t count) const
{
    if (count == 0 || !available())
        return {};
    const auto& info = dtypeInfo(m_type);
    const size_t block = info.blockElements;
    // One block of the group's values, repeated cyclically when the group is shorter (keeps min and max).
    std::vector<float> group(block);
    for (size_t i = 0; i < block; ++i)
        group[i] = values[i % count];
    std::vector<unsigned char> q(info.blockBytes);
    ggml::quantize(m_type, group.data(), 1, block, q.data());
    auto half = [&](size_t offset) {
        uint16_t h;
        std::memcpy(&h, q.data() + offset, 2);
        return halfToFloat(h);
    };
    std::vector<float> levels;
    auto affine = [&](float d, float m, int lo, int hi) {
        for (int k = lo; k <= hi; ++k)
            levels.push_back(d * static_cast<float>(k) + m);
    };
    switch (m_type) {
    case DType::Q8_0:
        affine(half(0), 0, -128, 127);
        break;
    case DType::Q4_0:
        affine(half(0), 0, -8, 7);
        break;
    case DType::Q5_0:
        affine(half(0), 0, -16, 15);
        break;
    case DType::Q4_1:
        affine(half(0), half(2), 0, 15);
        break;
    case DType::Q5_1:
        affine(half(0), half(2), 0, 31);
        break;
    case DType::IQ4_NL: {
        static constexpr int kValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};
        for (int v : kValues)
            levels.push_back(half(0) * static_cast<float>(v));
        break;
    }
    case DType::MXFP4: {
        static constexpr float kValues[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
        const float scale = std::ldexp(1.0f, static_cast<int>(q[0]) - 127);
        for (float v : kValues) {
            levels.push_back(v * scale);
            levels.push_back(-v * scale);
        }
        break;
    }
    default: {
        // Sub-block scales: report the values the block's round trip uses.
        levels.resize(block);
        ggml::decode(m_type, q.data(), block, levels.data());
        break;
    }
    }
    return sortedUnique(std::move(levels));
}

// ---- integers (GPTQ layout) ----

class IntFormat final : public QuantFormat {
public:
    explicit IntFormat(IntQuantConfig config) : m_config(config)
    {
        std::string granularity = config.groupSize > 0    ? "g" + std::to_string(config.groupSize)
                                  : config.groupSize == 0 ? "tensor"
                                                          : "ch";
        m_traits.name =
            "INT" + std::to_string(config.bits) + "-" + granularity + (config.symmetric ? "-sym" : "-asym");
        m_traits.kind = FormatKind::Integer;
        m_traits.bits = config.bits;
        m_traits.groupSize = config.groupSize;
        m_traits.symmetric = config.symmetric;
        const std::string scaleText = config.groupSize > 0
                                          ? "per " + std::to_string(config.groupSize) + " columns of each row"
                                      : config.groupSize == 0 ? "for the tensor"
                                                              : "per row";
        m_traits.layout = "GPTQ: int32-packed " + std::to_string(config.bits) + "-bit qweight, fp16 scale " +
                          "and packed zero " + scaleText + (config.groupSize == 0 ? "" : ", int32 g_idx");
    }
    const FormatTraits& traits() const override { return m_traits; }
    bool supports(uint64_t rows, uint64_t cols) const override { return rows > 0 && cols > 0; }
    std::optional<uint64_t> storedBytes(uint64_t rows, uint64_t cols) const override
    {
        return intStoredBytes(m_config, rows, cols);
    }
    void roundTrip(const float* src, uint64_t rows, uint64_t cols, float* out, const float*) const override
    {
        intRoundTrip(m_config, src, rows, cols, out);
    }
    bool needsTensorRange() const override { return m_config.groupSize == 0; }
    void roundTripChunk(const float* src, uint64_t rows, uint64_t cols, float* out, const float*,
                        const TensorRange& range) const override
    {
        if (m_config.groupSize == 0)
            intRoundTrip(m_config, src, rows, cols, out, range.min, range.max);
        else
            intRoundTrip(m_config, src, rows, cols, out);
    }
    std::vector<float> gridLevels(const float* values, size_t count) const override
    {
        float lo, hi;
        minMaxOf(values, count, lo, hi);
        const IntGrid g = intGridFor(lo, hi, m_config.bits, m_config.symmetric);
        std::vector<float> levels;
        for (int q = 0; q <= g.maxq; ++q)
            levels.push_back(g.scale * (static_cast<float>(q) - g.zero));
        return levels;
    }

private:
    IntQuantConfig m_config;
    FormatTraits m_traits;
};

// ---- FP8 ----

class Fp8Format final : public QuantFormat {
public:
    Fp8Format(Fp8Kind kind, bool perChannel) : m_kind(kind), m_perChannel(perChannel)
    {
        m_traits.name =
            std::string(kind == Fp8Kind::E4M3 ? "FP8-E4M3" : "FP8-E5M2") + (perChannel ? "-ch" : "");
        m_traits.kind = FormatKind::Fp8;
        m_traits.bits = 8;
        m_traits.groupSize = perChannel ? -1 : 0;
        m_traits.symmetric = true;
        m_traits.storage = kind == Fp8Kind::E4M3 ? DType::F8_E4M3 : DType::F8_E5M2;
        m_traits.layout = std::string("1 byte per weight, float32 scale = absmax / ") +
                          (kind == Fp8Kind::E4M3 ? "448" : "57344") +
                          (perChannel ? " per row" : " per tensor");
    }
    const FormatTraits& traits() const override { return m_traits; }
    bool supports(uint64_t rows, uint64_t cols) const override { return rows > 0 && cols > 0; }
    std::optional<uint64_t> storedBytes(uint64_t rows, uint64_t cols) const override
    {
        return fp8StoredBytes(m_perChannel, rows, cols);
    }
    void roundTrip(const float* src, uint64_t rows, uint64_t cols, float* out, const float*) const override
    {
        fp8RoundTrip(m_kind, m_perChannel, src, rows, cols, out);
    }
    bool needsTensorRange() const override { return !m_perChannel; }
    void roundTripChunk(const float* src, uint64_t rows, uint64_t cols, float* out, const float*,
                        const TensorRange& range) const override
    {
        if (m_perChannel)
            fp8RoundTrip(m_kind, true, src, rows, cols, out);
        else
            fp8RoundTrip(m_kind, false, src, rows, cols, out, range.absMax());
    }
    std::vector<float> gridLevels(const float* values, size_t count) const override
    {
        float lo, hi;
        minMaxOf(values, count, lo, hi);
        const float scale = fp8ScaleFor(m_kind, std::max(-lo, hi));
        std::vector<float> levels;
        for (int c = 0; c < 256; ++c)
            levels.push_back(fp8ToFloat(m_kind, static_cast<uint8_t>(c)) * scale);
        return sortedUnique(std::move(levels));
    }

private:
    Fp8Kind m_kind;
    bool m_perChannel;
    FormatTraits m_traits;
};

// ---- NF4 ----

class Nf4Format final : public QuantFormat {
public:
    Nf4Format()
    {
        m_traits.name = "NF4";
        m_traits.kind = FormatKind::Nf4;
        m_traits.bits = 4;
        m_traits.groupSize = static_cast<int>(kNf4BlockSize);
        m_traits.symmetric = true;
        m_traits.layout = "bitsandbytes: 4-bit NF4 codes, float32 absmax per 64 weights of the flat tensor";
    }
    const FormatTraits& traits() const override { return m_traits; }
    bool supports(uint64_t rows, uint64_t cols) const override { return rows > 0 && cols > 0; }
    std::optional<uint64_t> storedBytes(uint64_t rows, uint64_t cols) const override
    {
        auto n = checkedMul(rows, cols);
        return n ? nf4StoredBytes(*n) : std::nullopt;
    }
    void roundTrip(const float* src, uint64_t rows, uint64_t cols, float* out, const float*) const override
    {
        nf4RoundTrip(src, rows * cols, out);
    }
    uint64_t rowAlignment(uint64_t cols) const override
    {
        return cols ? kNf4BlockSize / std::gcd(cols, kNf4BlockSize) : 1;
    }
    std::vector<float> gridLevels(const float* values, size_t count) const override
    {
        float lo, hi;
        minMaxOf(values, count, lo, hi);
        const float absMax = std::max(-lo, hi);
        std::vector<float> levels;
        for (float c : nf4Codebook())
            levels.push_back(c * absMax);
        return sortedUnique(std::move(levels));
    }

private:
    FormatTraits m_traits;
};

// ---- registry ----

struct Registry {
    std::vector<std::shared_ptr<const QuantFormat>> formats;
    std::map<std::string, std::shared_ptr<const QuantFormat>> byName; // lower-case names and aliases

    Registry()
    {
        add(std::make_shared<FloatFormat>(DType::BF16));
        add(std::make_shared<FloatFormat>(DType::F16));
        for (DType t :
             {DType::Q8_0, DType::Q6_K, DType::Q5_K, DType::Q5_1, DType::Q5_0, DType::Q4_K, DType::Q4_1,
              DType::Q4_0, DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4, DType::Q3_K, DType::Q2_K})
            add(std::make_shared<GgmlFormat>(t));
        for (int bits = 8; bits >= 2; --bits)
            for (int group : {-1, 128, 64, 32, 0})
                for (bool sym : {true, false})
                    add(std::make_shared<IntFormat>(IntQuantConfig{bits, group, sym}));
        for (Fp8Kind k : {Fp8Kind::E4M3, Fp8Kind::E5M2})
            for (bool ch : {false, true})
                add(std::make_shared<Fp8Format>(k, ch));
        add(std::make_shared<Nf4Format>());

        for (int bits = 2; bits <= 8; ++bits) {
            const std::string target =
                bits == 8 ? "INT8-ch-sym" : "INT" + std::to_string(bits) + "-g128-asym";
            alias("int" + std::to_string(bits), target);
            alias("w" + std::to_string(bits), target);
        }
        alias("fp8", "FP8-E4M3");
        alias("e4m3", "FP8-E4M3");
        alias("e5m2", "FP8-E5M2");
        alias("fp8-e4m3-tensor", "FP8-E4M3");
        alias("fp8-e5m2-tensor", "FP8-E5M2");
        alias("bfloat16", "BF16");
        alias("fp16", "F16");
        alias("float16", "F16");
        alias("half", "F16");
    }
    void add(std::shared_ptr<const QuantFormat> f)
    {
        byName[lower(f->name())] = f;
        formats.push_back(std::move(f));
    }
    void alias(const std::string& name, const std::string& target)
    {
        byName[name] = byName.at(lower(target));
    }
};

const Registry& registry()
{
    static const Registry r;
    return r;
}

} // namespace

std::shared_ptr<const QuantFormat> findFormat(std::string_view name)
{
    const auto& r = registry();
    std::string key = lower(name);
    auto it = r.byName.find(key);
    if (it == r.byName.end()) {
        // Accept underscores for dashes in the INT / FP8 names ("int4_g128_asym").
        std::replace(key.begin(), key.end(), '_', '-');
        it = r.byName.find(key);
    }
    return it == r.byName.end() ? nullptr : it->second;
}

std::vector<std::string> allFormatNames()
{
    std::vector<std::string> names;
    for (const auto& f : registry().formats)
        names.push_back(f->name());
    return names;
}

std::vector<std::string> defaultSensitivityFormats()
{
    return {"BF16",           "Q8_0", "INT8-ch-sym", "Q6_K",     "Q5_K", "Q4_K",
            "INT4-g128-asym", "Q3_K", "Q2_K",        "FP8-E4M3", "NF4"};
}

std::optional<double> formatBitsPerWeight(const QuantFormat& format, uint64_t rows, uint64_t cols)
{
    auto bytes = format.storedBytes(rows, cols);
    if (!bytes || rows == 0 || cols == 0)
        return std::nullopt;
    return 8.0 * static_cast<double>(*bytes) / (static_cast<double>(rows) * static_cast<double>(cols));
}

} // namespace qs
