#include "core/io/checkpointwriter.h"

#include "core/io/safetensorswriter.h"
#include "core/model/matrixview.h"
#include "core/plan/export.h"
#include "core/quant/format.h"
#include "core/quant/fp8.h"
#include "core/quant/int_quant.h"
#include "core/quant/metrics.h"
#include "core/util/atomicfile.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <set>

namespace qs {

namespace fs = std::filesystem;

const char* checkpointKindName(CheckpointKind kind)
{
    switch (kind) {
    case CheckpointKind::CompressedTensors:
        return "compressed-tensors";
    case CheckpointKind::Gptq:
        return "gptq";
    case CheckpointKind::FakeQuant:
        return "fake-quant";
    }
    return "fake-quant";
}

namespace {

constexpr size_t kChunkBytes = 4u << 20;

bool endsWith(std::string_view s, std::string_view suffix)
{
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

fs::path modelFolder(const Model& model)
{
    std::error_code ec;
    const fs::path p = model.path();
    const fs::path folder = fs::is_directory(p, ec) ? p : p.parent_path();
    return folder.empty() ? fs::path(".") : folder;
}

bool isFloatDType(DType t)
{
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

// Values per int32 word: compressed-tensors and GPTQ both pack 32 / bits whole values into each word,
// the first value in the lowest bits.
uint64_t packFactor(int bits)
{
    return 32u / static_cast<uint64_t>(bits);
}

uint64_t ceilDiv(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

bool isFp8E4M3(const QuantFormat& f)
{
    return f.traits().kind == FormatKind::Fp8 && f.traits().storage == DType::F8_E4M3;
}

// Whether a format is stored as a quantized weight (companion tensors) by the target, or as a float tensor.
bool isQuantized(const QuantFormat& f)
{
    return f.traits().kind != FormatKind::Float;
}

std::optional<DType> floatStorage(const QuantFormat& f)
{
    if (f.traits().kind == FormatKind::Float && f.traits().storage && isFloatDType(*f.traits().storage))
        return f.traits().storage;
    return std::nullopt;
}

// ---- problems ----

void addTargetProblems(CheckpointKind kind, const Plan& plan, std::vector<std::string>& out)
{
    if (kind == CheckpointKind::FakeQuant)
        return;
    try {
        exportPlan(plan,
                   kind == CheckpointKind::Gptq ? ExportTarget::GptqModel : ExportTarget::CompressedTensors);
    } catch (const ExportError& e) {
        for (const auto& p : e.problems())
            out.push_back(p.tensor + (p.format.empty() ? "" : " (" + p.format + ")") + ": " + p.reason);
    }
}

} // namespace

uint64_t checkpointTensorBytes(CheckpointKind kind, const Plan& plan, const TensorInfo& t)
{
    const auto name = plan.formatOf(t.name);
    const auto f = name ? findFormat(*name) : nullptr;
    if (!f || !isQuantized(*f))
        return plannedBytes(plan, t); // stored bytes, or the float format's converted size
    if (kind == CheckpointKind::FakeQuant)
        return t.bytes; // values replaced, dtype kept
    const auto& tr = f->traits();
    if (kind == CheckpointKind::CompressedTensors && tr.kind == FormatKind::Integer && t.shape.size() == 2 &&
        tr.groupSize != 0 && tr.bits > 0) {
        // weight_packed (int32, bits per value along the row), weight_scale (F32 per row and group),
        // weight_zero_point (int32, packed along the rows, asymmetric only), weight_shape (2 x int64).
        const uint64_t rows = t.shape[0], cols = t.shape[1], bits = static_cast<uint64_t>(tr.bits);
        const uint64_t groups = tr.groupSize > 0 ? ceilDiv(cols, static_cast<uint64_t>(tr.groupSize)) : 1;
        uint64_t bytes = rows * ceilDiv(cols * bits, 32) * 4 + rows * groups * 4 + 2 * 8;
        if (!tr.symmetric)
            bytes += ceilDiv(rows * bits, 32) * groups * 4;
        return bytes;
    }
    // GPTQ (qweight, qzeros, F16 scales, g_idx) and FP8 (codes + F32 scales): the format's own size model.
    return plannedBytes(plan, t);
}

std::vector<std::string> checkpointProblems(CheckpointKind kind, const Model& model, const Plan& plan)
{
    std::vector<std::string> out;
    if (model.format() != ModelFormat::Safetensors)
        out.push_back(std::string("(model): checkpoints are written from safetensors models, not ") +
                      modelFormatName(model.format()));
    for (const auto& [name, formatName] : plan.assignments()) {
        const TensorInfo* t = model.find(name);
        if (!t) {
            out.push_back(name + ": not a tensor of the model");
            continue;
        }
        const auto f = findFormat(formatName);
        if (!f) {
            out.push_back(name + ": unknown format '" + formatName + "'");
            continue;
        }
        const auto& tr = f->traits();
        const std::string where = name + " (" + f->name() + "): ";
        if (!dtypeInfo(t->dtype).decodable || !isFloatDType(t->dtype)) {
            out.push_back(where + "stored as " + dtypeName(t->dtype) +
                          ", which is not a float type to quantize");
            continue;
        }
        if (!f->available()) {
            out.push_back(where + "the format's codec is not built in");
            continue;
        }
        const MatrixView view = matrixViewOf(model, *t); // rows = output channels in every layout
        const uint64_t rows = view.rows, cols = view.cols;
        if (!isQuantized(*f)) {
            if (!floatStorage(*f))
                out.push_back(where + "no float storage type");
            continue;
        }
        if (t->shape.size() != 2 && kind != CheckpointKind::FakeQuant) {
            out.push_back(where + "only 2-D weights are quantized, this tensor has " +
                          std::to_string(t->shape.size()) + " dimensions");
            continue;
        }
        if (!f->supports(rows, cols)) {
            out.push_back(where + "cannot store a " + std::to_string(rows) + " x " + std::to_string(cols) +
                          " tensor");
            continue;
        }
        if (kind == CheckpointKind::FakeQuant)
            continue;
        if (!endsWith(name, ".weight")) {
            out.push_back(where + "only Linear weights (names ending in .weight) are quantized");
            continue;
        }
        if (tr.kind == FormatKind::Integer) {
            if (tr.groupSize == 0) {
                out.push_back(where +
                              "no per-tensor integer scheme in this target: use a group size or per-channel");
                continue;
            }
            if (tr.groupSize > 0 && cols % static_cast<uint64_t>(tr.groupSize) != 0) {
                out.push_back(where + "group size " + std::to_string(tr.groupSize) +
                              " does not divide the row length " + std::to_string(cols));
                continue;
            }
            if (kind == CheckpointKind::CompressedTensors && tr.bits != 4 && tr.bits != 8)
                out.push_back(where + "vLLM loads pack-quantized weights of 4 or 8 bits only");
            if (kind == CheckpointKind::Gptq && tr.bits != 2 && tr.bits != 4 && tr.bits != 8)
                out.push_back(where +
                              "GPTQ checkpoints are written with 2, 4 or 8 bits (3-bit packing is not "
                              "implemented)");
        } else if (kind == CheckpointKind::CompressedTensors && isFp8E4M3(*f)) {
            // float-quantized
        } else {
            out.push_back(where + "the " + checkpointKindName(kind) +
                          " writer has no layout for this format");
        }
    }
    addTargetProblems(kind, plan, out);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

namespace {

// ---- encoding ----

// Integer codes of a rows x cols weight: q in [0, maxq], one scale and zero per (row, group); gIdx empty
// unless precomputed with act-order.
using IntCodes = PrecomputedIntCodes;

uint64_t groupOf(const IntCodes& c, uint64_t column)
{
    return c.gIdx.empty() ? column / c.groupLen : static_cast<uint64_t>(c.gIdx[column]);
}

// Round to nearest (intCodes() below) unless the caller handed codes in; those are checked against the
// tensor and format first.
const IntCodes* precomputedFor(const PrecomputedCodes* codes, const TensorInfo& t, const FormatTraits& tr,
                               bool needConsecutiveGroups)
{
    if (!codes)
        return nullptr;
    const auto it = codes->find(t.name);
    if (it == codes->end() || !it->second)
        return nullptr;
    const IntCodes& c = *it->second;
    const uint64_t rows = t.shape[0], cols = t.shape[1];
    const uint64_t groupLen = tr.groupSize > 0 ? static_cast<uint64_t>(tr.groupSize) : cols;
    const uint64_t groups = (cols + groupLen - 1) / groupLen;
    const uint32_t maxq = (1u << tr.bits) - 1;
    bool ok = c.rows == rows && c.cols == cols && c.groupLen == groupLen && c.groups == groups &&
              c.q.size() == rows * cols && c.scale.size() == rows * groups && c.zero.size() == rows * groups &&
              (c.gIdx.empty() || c.gIdx.size() == cols);
    for (size_t i = 0; ok && i < c.q.size(); ++i)
        ok = c.q[i] <= maxq;
    for (size_t i = 0; ok && i < c.zero.size(); ++i)
        ok = c.zero[i] <= maxq;
    for (size_t i = 0; ok && i < c.gIdx.size(); ++i)
        ok = c.gIdx[i] >= 0 && static_cast<uint64_t>(c.gIdx[i]) < groups;
    if (!ok)
        throw Error(ErrorCode::BadValue, t.name + ": the precomputed codes do not fit the tensor and " + tr.name);
    for (size_t i = 0; needConsecutiveGroups && i < c.gIdx.size(); ++i)
        if (static_cast<uint64_t>(c.gIdx[i]) != i / groupLen)
            throw Error(ErrorCode::BadValue, t.name + ": act-order groups (g_idx) cannot be stored in "
                                                      "compressed-tensors; quantize without act-order");
    return &c;
}

IntCodes intCodes(const float* x, uint64_t rows, uint64_t cols, int bits, int groupSize, bool symmetric)
{
    IntCodes c;
    c.rows = rows;
    c.cols = cols;
    c.groupLen = groupSize > 0 ? static_cast<uint64_t>(groupSize) : cols;
    c.groups = ceilDiv(cols, c.groupLen);
    c.q.resize(rows * cols);
    c.scale.resize(rows * c.groups);
    c.zero.resize(rows * c.groups);
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t g = 0; g < c.groups; ++g) {
            const uint64_t first = g * c.groupLen, n = std::min(c.groupLen, cols - first);
            const float* p = x + r * cols + first;
            float lo = 0, hi = 0;
            for (uint64_t i = 0; i < n; ++i) {
                lo = std::min(lo, p[i]);
                hi = std::max(hi, p[i]);
            }
            const IntGrid grid = intGridFor(lo, hi, bits, symmetric);
            const float maxq = static_cast<float>(grid.maxq);
            c.scale[r * c.groups + g] = grid.scale;
            c.zero[r * c.groups + g] = static_cast<uint8_t>(grid.zero);
            for (uint64_t i = 0; i < n; ++i) {
                // The same float operations as int_quant's gridValue (nearbyint rounds half to even).
                float q = std::nearbyint(p[i] / grid.scale) + grid.zero;
                q = std::min(std::max(q, 0.0f), maxq);
                c.q[r * cols + first + i] = static_cast<uint8_t>(q);
            }
        }
    return c;
}

void putLe32(std::vector<uint8_t>& out, uint64_t index, uint32_t v)
{
    for (int b = 0; b < 4; ++b)
        out[index * 4 + b] = static_cast<uint8_t>(v >> (8 * b));
}

template <class T> std::vector<uint8_t> bytesOf(const std::vector<T>& v)
{
    std::vector<uint8_t> out(v.size() * sizeof(T));
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

// A float as it reads back after being stored as `type`.
float storedAs(float v, DType type)
{
    if (type == DType::F16)
        return halfToFloat(floatToHalf(v));
    if (type == DType::BF16)
        return bf16ToFloat(floatToBf16(v));
    return v;
}

// The SQNR of the sampled rows (tensorreport.h) of a rows x cols tensor x against dequant(r, i).
template <class Dequant>
void measureRows(QuantizedTensor& out, const float* x, uint64_t rows, uint64_t cols, Dequant dequant)
{
    ErrorAccumulator acc;
    std::vector<float> y(cols);
    for (uint64_t r = 0; r < rows; r += sqnrRowStride(rows, cols)) {
        for (uint64_t i = 0; i < cols; ++i)
            y[i] = dequant(r, i);
        acc.add(x + r * cols, y.data(), 1, cols);
    }
    setQuality(out, acc);
}

// Integer codes as a loader decodes them: scale * (q - zero). GPTQ stores the scale as F16 and zero - 1 in
// `bits` bits, so a zero point of 0 reads back as 2^bits.
void measureIntCodes(QuantizedTensor& out, const float* x, const IntCodes& c, bool gptq, int bits)
{
    const uint32_t mask = (1u << bits) - 1;
    measureRows(out, x, c.rows, c.cols, [&](uint64_t r, uint64_t i) {
        const uint64_t g = r * c.groups + groupOf(c, i);
        float scale = c.scale[g];
        float zero = c.zero[g];
        if (gptq) {
            scale = halfToFloat(floatToHalf(scale));
            zero = static_cast<float>(((static_cast<uint32_t>(c.zero[g]) - 1) & mask) + 1);
        }
        return scale * (static_cast<float>(c.q[r * c.cols + i]) - zero);
    });
}

// Float values converted to a float dtype, streamed in chunks.
void writeFloats(const float* v, uint64_t n, DType type, const TensorSink& sink)
{
    std::vector<uint8_t> buf;
    const uint64_t step = kChunkBytes / 8;
    for (uint64_t i = 0; i < n; i += step) {
        const uint64_t m = std::min(step, n - i);
        switch (type) {
        case DType::F32:
            sink(v + i, m * 4);
            continue;
        case DType::F64: {
            buf.resize(m * 8);
            for (uint64_t k = 0; k < m; ++k) {
                const double d = v[i + k];
                std::memcpy(buf.data() + 8 * k, &d, 8);
            }
            break;
        }
        case DType::F16:
        case DType::BF16: {
            buf.resize(m * 2);
            for (uint64_t k = 0; k < m; ++k) {
                const uint16_t h = type == DType::F16 ? floatToHalf(v[i + k]) : floatToBf16(v[i + k]);
                buf[2 * k] = static_cast<uint8_t>(h);
                buf[2 * k + 1] = static_cast<uint8_t>(h >> 8);
            }
            break;
        }
        default:
            throw Error(ErrorCode::Internal, std::string("cannot write floats as ") + dtypeName(type));
        }
        sink(buf.data(), buf.size());
    }
}

void copyRaw(const Model& model, const TensorInfo& t, const TensorSink& sink)
{
    const auto raw = model.rawData(t);
    for (size_t i = 0; i < raw.size(); i += kChunkBytes)
        sink(raw.data() + i, std::min(kChunkBytes, raw.size() - i));
}

std::vector<float> decodeAll(const Model& model, const TensorInfo& t)
{
    std::vector<float> v(t.elements());
    model.decode(t, 0, v.size(), v.data());
    return v;
}

// One planned tensor written as one or several safetensors tensors. The first producer call encodes the
// whole weight and keeps the companions until they are written, so memory stays a small multiple of the
// largest tensor.
struct Encoded {
    std::vector<std::vector<uint8_t>> parts;
};

struct Output {
    std::vector<SafetensorsTensorSpec> specs;
    std::vector<std::function<void(const TensorSink&)>> producers;
    std::vector<std::string> warnings;
    std::vector<QuantizedTensor> tensors; // one per model tensor; the producers fill in the SQNR
    uint64_t predicted = 0;
    const PrecomputedCodes* codes = nullptr; // GPTQ's codes by tensor, instead of round to nearest

    size_t slot() const { return tensors.size() - 1; }

    void add(SafetensorsTensorSpec spec, std::function<void(const TensorSink&)> producer)
    {
        specs.push_back(std::move(spec));
        producers.push_back(std::move(producer));
    }

    // `names[i]` / `dtypes[i]` / `shapes[i]` describe part i of what `encode` returns.
    void addEncoded(uint32_t shard, const std::vector<std::string>& names, const std::vector<DType>& dtypes,
                    const std::vector<std::vector<uint64_t>>& shapes, std::function<Encoded()> encode)
    {
        auto cache = std::make_shared<std::optional<Encoded>>();
        auto enc = std::make_shared<std::function<Encoded()>>(std::move(encode));
        for (size_t k = 0; k < names.size(); ++k)
            add({names[k], dtypes[k], shapes[k], shard}, [cache, enc, k](const TensorSink& sink) {
                if (!*cache)
                    *cache = (*enc)();
                auto& part = (**cache).parts.at(k);
                sink(part.data(), part.size());
                part = {};
            });
    }
};

// ---- per-target tensors ----

void addCompressedInt(Output& job, const Model& model, const TensorInfo& t, const FormatTraits& tr)
{
    const std::string base = t.name.substr(0, t.name.size() - 6); // without "weight"
    const uint64_t rows = t.shape[0], cols = t.shape[1];
    const uint64_t pf = packFactor(tr.bits);
    const uint64_t groups = tr.groupSize > 0 ? cols / static_cast<uint64_t>(tr.groupSize) : 1;
    std::vector<std::string> names{base + "weight_packed", base + "weight_scale"};
    std::vector<DType> dtypes{DType::I32, DType::F32};
    std::vector<std::vector<uint64_t>> shapes{{rows, ceilDiv(cols, pf)}, {rows, groups}};
    if (!tr.symmetric) {
        names.push_back(base + "weight_zero_point");
        dtypes.push_back(DType::I32);
        shapes.push_back({ceilDiv(rows, pf), groups});
    }
    names.push_back(base + "weight_shape");
    dtypes.push_back(DType::I64);
    shapes.push_back({2});
    const TensorInfo* tp = &t;
    const size_t slot = job.slot();
    const IntCodes* pre = precomputedFor(job.codes, t, tr, /*needConsecutiveGroups=*/true);
    job.addEncoded(model.fileShard(t.fileIndex), names, dtypes, shapes,
                   [&model, &job, slot, tp, tr, rows, cols, pf, pre]() {
        const auto x = decodeAll(model, *tp);
        IntCodes rtn;
        const IntCodes& c = pre ? *pre : (rtn = intCodes(x.data(), rows, cols, tr.bits, tr.groupSize, tr.symmetric));
        measureIntCodes(job.tensors[slot], x.data(), c, false, tr.bits);
        Encoded e;
        // compressed-tensors keeps signed codes and stores them offset by 2^(bits-1): the unsigned GPTQ
        // code q is exactly that stored value, and the signed zero point is zero - 2^(bits-1).
        const uint64_t words = ceilDiv(cols, pf);
        std::vector<uint8_t> packed(rows * words * 4, 0);
        for (uint64_t r = 0; r < rows; ++r)
            for (uint64_t w = 0; w < words; ++w) {
                uint32_t v = 0;
                for (uint64_t j = 0; j < pf && w * pf + j < cols; ++j)
                    v |= static_cast<uint32_t>(c.q[r * cols + w * pf + j]) << (tr.bits * j);
                putLe32(packed, r * words + w, v);
            }
        e.parts.push_back(std::move(packed));
        e.parts.push_back(bytesOf(c.scale));
        if (!tr.symmetric) {
            const uint64_t zrows = ceilDiv(rows, pf);
            std::vector<uint8_t> zp(zrows * c.groups * 4, 0);
            for (uint64_t w = 0; w < zrows; ++w)
                for (uint64_t g = 0; g < c.groups; ++g) {
                    uint32_t v = 0;
                    for (uint64_t j = 0; j < pf && w * pf + j < rows; ++j)
                        v |= static_cast<uint32_t>(c.zero[(w * pf + j) * c.groups + g]) << (tr.bits * j);
                    putLe32(zp, w * c.groups + g, v);
                }
            e.parts.push_back(std::move(zp));
        }
        e.parts.push_back(
            bytesOf(std::vector<int64_t>{static_cast<int64_t>(rows), static_cast<int64_t>(cols)}));
        return e;
    });
}

void addCompressedFp8(Output& job, const Model& model, const TensorInfo& t, const FormatTraits& tr)
{
    const std::string base = t.name.substr(0, t.name.size() - 6);
    const uint64_t rows = t.shape[0], cols = t.shape[1];
    const bool perChannel = tr.groupSize < 0;
    const TensorInfo* tp = &t;
    const size_t slot = job.slot();
    job.addEncoded(model.fileShard(t.fileIndex), {base + "weight", base + "weight_scale"}, {DType::F8_E4M3, DType::F32},
                   {{rows, cols}, perChannel ? std::vector<uint64_t>{rows, 1} : std::vector<uint64_t>{1}},
                   [&model, &job, slot, tp, rows, cols, perChannel]() {
                       const auto x = decodeAll(model, *tp);
                       std::vector<uint8_t> codes(rows * cols);
                       std::vector<float> scales;
                       auto absMax = [&](uint64_t first, uint64_t n) {
                           float a = 0;
                           for (uint64_t i = 0; i < n; ++i)
                               a = std::max(a, std::fabs(x[first + i]));
                           return a;
                       };
                       if (!perChannel)
                           scales.push_back(fp8ScaleFor(Fp8Kind::E4M3, absMax(0, rows * cols)));
                       for (uint64_t r = 0; r < rows; ++r) {
                           if (perChannel)
                               scales.push_back(fp8ScaleFor(Fp8Kind::E4M3, absMax(r * cols, cols)));
                           const float s = scales.back();
                           for (uint64_t i = 0; i < cols; ++i)
                               codes[r * cols + i] = floatToFp8(Fp8Kind::E4M3, x[r * cols + i] / s);
                       }
                       measureRows(job.tensors[slot], x.data(), rows, cols, [&](uint64_t r, uint64_t i) {
                           return fp8ToFloat(Fp8Kind::E4M3, codes[r * cols + i]) * scales[perChannel ? r : 0];
                       });
                       Encoded e;
                       e.parts.push_back(std::move(codes));
                       e.parts.push_back(bytesOf(scales));
                       return e;
                   });
}

void addGptq(Output& job, const Model& model, const TensorInfo& t, const FormatTraits& tr)
{
    const std::string base = t.name.substr(0, t.name.size() - 6);
    const uint64_t n = t.shape[0], k = t.shape[1]; // GPTQ: N output features, K input features
    const uint64_t pf = packFactor(tr.bits);
    const uint64_t groups = tr.groupSize > 0 ? k / static_cast<uint64_t>(tr.groupSize) : 1;
    if (k % 32 != 0 || n % 32 != 0)
        job.warnings.push_back(t.name + ": " + std::to_string(n) + " x " + std::to_string(k) +
                               " is not a multiple of 32; the packed words are zero-padded, but GPTQ "
                               "kernels (exllama, marlin) need both dimensions to be multiples of 32");
    const TensorInfo* tp = &t;
    const size_t slot = job.slot();
    const IntCodes* pre = precomputedFor(job.codes, t, tr, /*needConsecutiveGroups=*/false);
    job.addEncoded(model.fileShard(t.fileIndex), {base + "qweight", base + "qzeros", base + "scales", base + "g_idx"},
                   {DType::I32, DType::I32, DType::F16, DType::I32},
                   {{ceilDiv(k, pf), n}, {groups, ceilDiv(n, pf)}, {groups, n}, {k}},
                   [&model, tp, tr, n, k, pf, &job, slot, pre]() {
                       const auto x = decodeAll(model, *tp);
                       IntCodes rtn;
                       const IntCodes& c =
                           pre ? *pre : (rtn = intCodes(x.data(), n, k, tr.bits, tr.groupSize, tr.symmetric));
                       measureIntCodes(job.tensors[slot], x.data(), c, true, tr.bits);
                       Encoded e;
                       const uint64_t kw = ceilDiv(k, pf), nw = ceilDiv(n, pf);
                       const uint32_t mask = (1u << tr.bits) - 1;
                       // qweight packs pf consecutive input features of one output column into a word.
                       std::vector<uint8_t> qweight(kw * n * 4, 0);
                       for (uint64_t w = 0; w < kw; ++w)
                           for (uint64_t col = 0; col < n; ++col) {
                               uint32_t v = 0;
                               for (uint64_t j = 0; j < pf && w * pf + j < k; ++j)
                                   v |= static_cast<uint32_t>(c.q[col * k + w * pf + j]) << (tr.bits * j);
                               putLe32(qweight, w * n + col, v);
                           }
                       // qzeros packs pf output features of one group; the "gptq" (v1) format stores zero - 1
                       // and the kernels add the 1 back.
                       std::vector<uint8_t> qzeros(c.groups * nw * 4, 0);
                       uint64_t zeroCount = 0;
                       for (uint64_t g = 0; g < c.groups; ++g)
                           for (uint64_t w = 0; w < nw; ++w) {
                               uint32_t v = 0;
                               for (uint64_t j = 0; j < pf && w * pf + j < n; ++j) {
                                   const uint32_t z = c.zero[(w * pf + j) * c.groups + g];
                                   zeroCount += z == 0;
                                   v |= ((z - 1) & mask) << (tr.bits * j);
                               }
                               putLe32(qzeros, g * nw + w, v);
                           }
                       if (zeroCount)
                           job.warnings.push_back(
                               tp->name + ": " + std::to_string(zeroCount) +
                               " group(s) have zero point 0, which the GPTQ v1 format cannot store "
                               "(loaders read it as " +
                               std::to_string(mask + 1) + ")");
                       std::vector<uint16_t> scales(c.groups * n);
                       for (uint64_t g = 0; g < c.groups; ++g)
                           for (uint64_t col = 0; col < n; ++col)
                               scales[g * n + col] = floatToHalf(c.scale[col * c.groups + g]);
                       std::vector<int32_t> gidx(k);
                       for (uint64_t i = 0; i < k; ++i)
                           gidx[i] = static_cast<int32_t>(groupOf(c, i));
                       e.parts.push_back(std::move(qweight));
                       e.parts.push_back(std::move(qzeros));
                       e.parts.push_back(bytesOf(scales));
                       e.parts.push_back(bytesOf(gidx));
                       return e;
                   });
}

void addPlain(Output& job, const Model& model, const TensorInfo& t, std::optional<DType> as,
              std::shared_ptr<const QuantFormat> roundTrip, const IntCodes* pre = nullptr)
{
    const DType dtype = as.value_or(t.dtype);
    const TensorInfo* tp = &t;
    if (!roundTrip && dtype == t.dtype) {
        job.tensors[job.slot()].copied = true;
        job.add({t.name, t.dtype, t.shape, model.fileShard(t.fileIndex)},
                [&model, tp](const TensorSink& sink) { copyRaw(model, *tp, sink); });
        return;
    }
    const size_t slot = job.slot();
    job.add({t.name, dtype, t.shape, model.fileShard(t.fileIndex)},
            [&model, &job, slot, tp, dtype, roundTrip, pre](const TensorSink& sink) {
                auto x = decodeAll(model, *tp);
                std::vector<float> y;
                if (pre) { // GPTQ's values: scale * (code - zero)
                    y.resize(x.size());
                    for (uint64_t r = 0; r < pre->rows; ++r)
                        for (uint64_t i = 0; i < pre->cols; ++i) {
                            const uint64_t g = r * pre->groups + groupOf(*pre, i);
                            y[r * pre->cols + i] = pre->scale[g] * (static_cast<float>(pre->q[r * pre->cols + i]) -
                                                                    static_cast<float>(pre->zero[g]));
                        }
                } else if (roundTrip) {
                    // Quantized as a runtime sees the weight (one row per output channel), written back in
                    // the source's layout.
                    const MatrixView view = matrixViewOf(model, *tp);
                    y.resize(x.size());
                    if (view.transposed) {
                        std::vector<float> q(x.size()); // one scratch copy of the tensor
                        storedToView(view, x.data(), y.data());
                        roundTrip->roundTrip(y.data(), view.rows, view.cols, q.data());
                        viewToStored(view, q.data(), y.data());
                    } else {
                        roundTrip->roundTrip(x.data(), view.rows, view.cols, y.data());
                    }
                }
                const std::vector<float>& out = roundTrip ? y : x;
                const uint64_t cols = tp->columns();
                measureRows(job.tensors[slot], x.data(), tp->rows(), cols,
                            [&](uint64_t r, uint64_t i) { return storedAs(out[r * cols + i], dtype); });
                writeFloats(out.data(), out.size(), dtype, sink);
            });
}

// ---- the shared driver ----

std::vector<std::string> shardNamesOf(const Model& model)
{
    // Files that hold other files' tensors (an overlay's replaced weights, core/model/overlay.h) are no shard.
    size_t shards = 0;
    for (uint32_t i = 0; i < model.files().size(); ++i)
        shards += model.fileShard(i) == i;
    if (shards == 1)
        return {"model.safetensors"};
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (uint32_t i = 0; i < model.files().size() && i < shards; ++i) {
        std::string n = model.files()[i]->path().filename().string();
        if (!seen.insert(n).second)
            throw Error(ErrorCode::Unsupported, "two input shards are both named " + n);
        names.push_back(n);
    }
    return names;
}

// Files of the input folder the writer replaces. A fake-quant checkpoint keeps config.json byte for byte;
// the quantized targets rewrite it with their quantization_config.
bool isReplacedFile(CheckpointKind kind, const std::string& name)
{
    return endsWith(name, ".safetensors") || endsWith(name, ".safetensors.index.json") ||
           (kind != CheckpointKind::FakeQuant && (name == "config.json" || name == "quantize_config.json"));
}

void prepareOutDir(const Model& model, const fs::path& out, bool& created)
{
    std::error_code ec;
    if (fs::exists(out, ec)) {
        if (!fs::is_directory(out, ec))
            throw Error(ErrorCode::BadValue, out.string() + ": output exists and is not a folder");
        if (fs::equivalent(out, modelFolder(model), ec))
            throw Error(ErrorCode::BadValue,
                        out.string() + ": output folder is the model's own folder; choose a new folder");
        if (!fs::is_empty(out, ec))
            throw Error(ErrorCode::BadValue, out.string() + ": output folder is not empty");
        return;
    }
    fs::create_directories(out, ec);
    if (ec)
        throw Error(ErrorCode::Io, out.string() + ": cannot create the output folder: " + ec.message());
    created = true;
}

QJsonObject readConfig(const Model& model)
{
    const fs::path p = modelFolder(model) / "config.json";
    std::error_code ec;
    if (!fs::is_regular_file(p, ec))
        return {};
    const auto file = MappedFile::open(p);
    QJsonParseError err;
    const auto doc = QJsonDocument::fromJson(
        QByteArray(reinterpret_cast<const char*>(file->data()), static_cast<qsizetype>(file->size())), &err);
    if (!doc.isObject())
        throw FormatError(ErrorCode::BadValue, p.string(), "config.json", static_cast<uint64_t>(err.offset),
                          "not a JSON object: " + err.errorString().toStdString());
    return doc.object();
}

QJsonObject exportJson(const Plan& plan, ExportTarget target)
{
    const auto text = exportPlan(plan, target).text;
    const auto doc = QJsonDocument::fromJson(QByteArray::fromStdString(text));
    if (!doc.isObject())
        throw Error(ErrorCode::Internal,
                    std::string("export to ") + exportTargetName(target) + " produced invalid JSON");
    return doc.object();
}

CheckpointWriteReport writeCheckpoint(CheckpointKind kind, const Model& model, const Plan& plan,
                                      const fs::path& outDir, JobControl* jobControl,
                                      const PrecomputedCodes* codes = nullptr)
{
    if (const auto problems = checkpointProblems(kind, model, plan); !problems.empty()) {
        std::string msg = std::string("cannot write a ") + checkpointKindName(kind) + " checkpoint: ";
        for (size_t i = 0; i < problems.size() && i < 12; ++i)
            msg += (i ? "; " : "") + problems[i];
        if (problems.size() > 12)
            msg += "; and " + std::to_string(problems.size() - 12) + " more";
        throw Error(ErrorCode::BadValue, msg);
    }

    Output job;
    job.codes = codes;
    CheckpointWriteReport report;
    for (const auto& t : model.tensors()) {
        report.predictedWeightBytes += checkpointTensorBytes(kind, plan, t);
        const auto formatName = plan.formatOf(t.name);
        const size_t firstSpec = job.specs.size();
        job.tensors.push_back({});
        job.tensors.back().name = t.name;
        const auto f = formatName ? findFormat(*formatName) : nullptr;
        job.tensors.back().format = f ? f->name() : std::string(dtypeName(t.dtype));
        const auto sumBytes = [&] {
            for (size_t i = firstSpec; i < job.specs.size(); ++i)
                job.tensors.back().bytes += safetensorsTensorBytes(job.specs[i]);
        };
        if (!f) {
            addPlain(job, model, t, std::nullopt, nullptr);
            sumBytes();
            continue;
        }
        const auto& tr = f->traits();
        if (!isQuantized(*f))
            addPlain(job, model, t, floatStorage(*f), nullptr);
        else if (kind == CheckpointKind::FakeQuant)
            addPlain(job, model, t, std::nullopt, f,
                     tr.kind == FormatKind::Integer && t.shape.size() == 2
                         ? precomputedFor(codes, t, tr, /*needConsecutiveGroups=*/false)
                         : nullptr);
        else if (kind == CheckpointKind::Gptq)
            addGptq(job, model, t, tr);
        else if (tr.kind == FormatKind::Integer)
            addCompressedInt(job, model, t, tr);
        else
            addCompressedFp8(job, model, t, tr);
        sumBytes();
    }

    std::optional<QJsonObject> config, quantizeConfig;
    if (kind != CheckpointKind::FakeQuant)
        config = readConfig(model);
    if (kind == CheckpointKind::CompressedTensors) {
        config->insert(
            QStringLiteral("quantization_config"),
            exportJson(plan, ExportTarget::CompressedTensors).value(QStringLiteral("quantization_config")));
    } else if (kind == CheckpointKind::Gptq) {
        quantizeConfig = exportJson(plan, ExportTarget::GptqModel);
        // Precomputed act-order codes: the loaders must apply g_idx.
        bool actOrder = false;
        for (const auto& [name, c] : codes ? *codes : PrecomputedCodes{})
            for (size_t i = 0; c && !actOrder && i < c->gIdx.size(); ++i)
                actOrder = static_cast<uint64_t>(c->gIdx[i]) != i / c->groupLen;
        if (actOrder)
            quantizeConfig->insert(QStringLiteral("desc_act"), true);
        config->insert(QStringLiteral("quantization_config"), *quantizeConfig);
    }

    // Everything else in the model folder (tokenizer, generation config, licence) travels with the weights.
    std::vector<fs::path> extras;
    const fs::path inFolder = modelFolder(model);
    for (const auto& entry : fs::directory_iterator(inFolder)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() && !name.empty() && name[0] != '.' && !isReplacedFile(kind, name))
            extras.push_back(entry.path());
    }

    uint64_t needed = 0;
    for (const auto& s : job.specs)
        needed += safetensorsTensorBytes(s);
    for (const auto& e : extras)
        needed += fs::file_size(e);
    const std::vector<std::string> shards = shardNamesOf(model);

    bool created = false;
    prepareOutDir(model, outDir, created);
    try {
        const uint64_t free = freeDiskBytes(outDir);
        if (free < needed)
            throw Error(ErrorCode::Io, outDir.string() + ": the checkpoint needs " + std::to_string(needed) +
                                           " bytes but only " + std::to_string(free) + " are free");
        AtomicFileSet files;
        std::map<std::string, std::string> metadata{{"format", "pt"}};
        const auto written = writeSafetensors(
            files, outDir, shards, job.specs, metadata,
            [&](size_t i, const TensorSink& sink) { job.producers[i](sink); }, jobControl);
        report.files = written.files;
        report.bytesWritten = written.bytesWritten;
        report.weightBytesWritten = written.tensorBytesWritten;

        auto addSmall = [&](const fs::path& path, const std::string& text) {
            AtomicFile& f = files.add(path);
            f.write(text);
            report.files.push_back(path);
            report.bytesWritten += f.bytesWritten();
        };
        if (config)
            addSmall(outDir / "config.json",
                     QJsonDocument(*config).toJson(QJsonDocument::Indented).toStdString());
        if (quantizeConfig)
            addSmall(outDir / "quantize_config.json",
                     QJsonDocument(*quantizeConfig).toJson(QJsonDocument::Indented).toStdString());
        for (const auto& e : extras) {
            checkCancel(jobControl);
            const auto in = MappedFile::open(e);
            AtomicFile& f = files.add(outDir / e.filename());
            for (uint64_t i = 0; i < in->size(); i += kChunkBytes)
                f.write(in->data() + i, static_cast<size_t>(std::min<uint64_t>(kChunkBytes, in->size() - i)));
            report.files.push_back(outDir / e.filename());
            report.bytesWritten += f.bytesWritten();
        }
        checkCancel(jobControl);
        files.commit();
    } catch (...) {
        std::error_code ec;
        if (created)
            fs::remove(outDir, ec); // only removes the folder if nothing is left in it
        throw;
    }
    report.warnings = std::move(job.warnings);
    report.tensors = std::move(job.tensors);
    reportProgress(jobControl, 1.0, "Done");
    return report;
}

} // namespace

CheckpointWriteReport writeCompressedTensors(const Model& model, const Plan& plan, const fs::path& outDir,
                                             JobControl* job, const PrecomputedCodes* codes)
{
    return writeCheckpoint(CheckpointKind::CompressedTensors, model, plan, outDir, job, codes);
}

CheckpointWriteReport writeGptqCheckpoint(const Model& model, const Plan& plan, const fs::path& outDir,
                                          JobControl* job, const PrecomputedCodes* codes)
{
    return writeCheckpoint(CheckpointKind::Gptq, model, plan, outDir, job, codes);
}

CheckpointWriteReport writeFakeQuant(const Model& model, const Plan& plan, const fs::path& outDir,
                                     JobControl* job, const PrecomputedCodes* codes)
{
    return writeCheckpoint(CheckpointKind::FakeQuant, model, plan, outDir, job, codes);
}

} // namespace qs
