// The quantize job and its GGUF writer. See quantize.h for the contract and docs/quantize.md for how the
// output matches llama-quantize's.
#include "core/io/checkpointwriter.h"
#include "core/quant/quantize.h"

#include "core/infer/activationstats.h"

#include "core/infer/awqmodel.h"
#include "core/infer/gptqmodel.h"
#include "core/model/model.h"
#include "core/model/overlay.h"
#include "core/quant/format.h"
#include "core/quant/ggml.h"
#include "core/quant/imatrix.h"
#include "core/quant/metrics.h"
#include "core/util/atomicfile.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sys/mman.h>
#include <system_error>
#include <unistd.h>

namespace qs {

namespace {

namespace fs = std::filesystem;

// GGUF value types (the ones the writer emits or must skip over).
enum : uint32_t {
    GgufU8 = 0,
    GgufI8,
    GgufU16,
    GgufI16,
    GgufU32,
    GgufI32,
    GgufF32,
    GgufBool,
    GgufString,
    GgufArray,
    GgufU64,
    GgufI64,
    GgufF64,
    GgufTypeCount
};

constexpr uint64_t kDefaultAlignment = 32;
// llama.cpp's GGML_QNT_VERSION, written as general.quantization_version.
constexpr uint32_t kQuantizationVersion = 2;
// Output staged per batch of rows: bounds peak memory independently of the tensor size.
constexpr uint64_t kBatchBytes = uint64_t{64} << 20;
// Values per row group (the unit of parallel work and of cancel checks: well under a millisecond).
constexpr uint64_t kGroupValues = uint64_t{1} << 16;
constexpr uint64_t kCopyChunk = uint64_t{16} << 20;

uint64_t padTo(uint64_t v, uint64_t alignment)
{
    const uint64_t r = v % alignment;
    return r == 0 ? v : v + (alignment - r);
}

[[noreturn]] void badInput(const std::string& file, const std::string& what)
{
    throw Error(ErrorCode::BadValue, file + ": " + what);
}

// ---- reading the input's KV section as raw bytes (copied verbatim, so the values keep their types) ----

struct RawKv {
    std::string key;
    std::span<const std::byte> bytes; // the whole entry: key length, key, type, value
    uint32_t type = 0;
    std::span<const std::byte> value;
};

class RawReader {
public:
    RawReader(std::span<const std::byte> data, const std::string& file) : m_data(data), m_file(file) {}
    uint64_t pos() const { return m_pos; }
    void need(uint64_t n) const
    {
        if (n > m_data.size() - m_pos)
            badInput(m_file, "GGUF header truncated at byte " + std::to_string(m_pos));
    }
    template <typename T> T read()
    {
        need(sizeof(T));
        T v;
        std::memcpy(&v, m_data.data() + m_pos, sizeof(T));
        m_pos += sizeof(T);
        return v;
    }
    void skip(uint64_t n)
    {
        need(n);
        m_pos += n;
    }
    std::string readString()
    {
        const auto n = read<uint64_t>();
        need(n);
        std::string s(reinterpret_cast<const char*>(m_data.data() + m_pos), static_cast<size_t>(n));
        m_pos += n;
        return s;
    }
    void skipValue(uint32_t type, int depth)
    {
        switch (type) {
        case GgufU8:
        case GgufI8:
        case GgufBool:
            return skip(1);
        case GgufU16:
        case GgufI16:
            return skip(2);
        case GgufU32:
        case GgufI32:
        case GgufF32:
            return skip(4);
        case GgufU64:
        case GgufI64:
        case GgufF64:
            return skip(8);
        case GgufString:
            return skip(read<uint64_t>());
        case GgufArray: {
            if (depth > 3)
                badInput(m_file, "GGUF arrays nested too deep");
            const auto elem = read<uint32_t>();
            const auto count = read<uint64_t>();
            if (elem >= GgufTypeCount)
                badInput(m_file, "unknown GGUF array type " + std::to_string(elem));
            // Every element takes at least one byte: a count beyond the bytes left is a lie.
            need(std::min<uint64_t>(count, m_data.size()));
            for (uint64_t i = 0; i < count; ++i)
                skipValue(elem, depth + 1);
            return;
        }
        default:
            badInput(m_file, "unknown GGUF value type " + std::to_string(type));
        }
    }
    std::span<const std::byte> slice(uint64_t from, uint64_t to) const
    {
        return m_data.subspan(from, to - from);
    }

private:
    std::span<const std::byte> m_data;
    const std::string& m_file;
    uint64_t m_pos = 0;
};

struct InputHeader {
    std::vector<RawKv> kvs;
    uint64_t alignment = kDefaultAlignment;
    uint64_t bytes = 0; // header size (before padding)
};

InputHeader readInputHeader(const Model& model)
{
    if (model.files().empty())
        throw Error(ErrorCode::BadValue, "the model has no file");
    const std::string file = model.files()[0]->path().string();
    RawReader r(model.files()[0]->bytes(), file);
    r.skip(4); // magic, checked by the loader
    r.skip(4); // version
    const auto tensorCount = r.read<uint64_t>();
    const auto kvCount = r.read<uint64_t>();
    InputHeader h;
    for (uint64_t i = 0; i < kvCount; ++i) {
        RawKv kv;
        const uint64_t start = r.pos();
        kv.key = r.readString();
        kv.type = r.read<uint32_t>();
        const uint64_t valueAt = r.pos();
        r.skipValue(kv.type, 0);
        kv.bytes = r.slice(start, r.pos());
        kv.value = r.slice(valueAt, r.pos());
        if (kv.key == "general.alignment") {
            uint32_t a = 0;
            if (kv.type != GgufU32)
                badInput(file, "general.alignment is not a u32");
            std::memcpy(&a, kv.value.data(), 4);
            if (a == 0 || (a & (a - 1)) != 0)
                badInput(file, "general.alignment " + std::to_string(a) + " is not a power of two");
            h.alignment = a;
        }
        h.kvs.push_back(std::move(kv));
    }
    for (uint64_t i = 0; i < tensorCount; ++i) {
        r.readString();
        const auto dims = r.read<uint32_t>();
        if (dims > 8)
            badInput(file, "tensor with " + std::to_string(dims) + " dimensions");
        r.skip(uint64_t{dims} * 8 + 4 + 8);
    }
    h.bytes = r.pos();
    return h;
}

// ---- writing ----

class Bytes {
public:
    template <typename T> void put(T v)
    {
        const auto* p = reinterpret_cast<const char*>(&v);
        m_data.append(p, sizeof(T));
    }
    void putString(std::string_view s)
    {
        put<uint64_t>(s.size());
        m_data.append(s);
    }
    void putRaw(std::span<const std::byte> b)
    {
        m_data.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    void putKeyU32(std::string_view key, uint32_t v)
    {
        putString(key);
        put<uint32_t>(GgufU32);
        put<uint32_t>(v);
    }
    void putKeyString(std::string_view key, std::string_view v)
    {
        putString(key);
        put<uint32_t>(GgufString);
        putString(v);
    }
    const std::string& data() const { return m_data; }

private:
    std::string m_data;
};

struct OutTensor {
    const TensorInfo* in = nullptr;
    DType type = DType::F32;
    uint64_t bytes = 0;
    bool copy = true; // stored bytes copied unchanged
    uint32_t shard = 0;
    uint64_t offset = 0; // within its shard's data section
};

// llama.cpp's load order, which llama-quantize keeps: tensors outside blocks first, then by block number,
// then by name within a block.
int blockOf(const std::string& name)
{
    if (name.rfind("blk.", 0) != 0)
        return -1;
    int n = 0;
    size_t i = 4;
    if (i >= name.size() || name[i] < '0' || name[i] > '9')
        return -1;
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
        n = n * 10 + (name[i] - '0');
        if (n > 1000000)
            return -1;
    }
    return i < name.size() && name[i] == '.' ? n : -1;
}

bool isFloatInput(DType t)
{
    return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

std::optional<DType> plannedType(const QuantizeParams& p, const TensorInfo& t)
{
    const auto name = p.plan.formatOf(t.name);
    if (!name)
        return t.dtype;
    const auto f = findFormat(*name);
    if (!f || !f->traits().storage)
        return std::nullopt;
    return *f->traits().storage;
}

struct Layout {
    std::vector<OutTensor> tensors; // in output order
    uint32_t shards = 1;
    uint64_t predictedWeightBytes = 0;
};

// Output types, order and shards. Tensors whose type cannot be resolved are left out (validation
// reports them).
Layout planLayout(const QuantizeParams& p, uint64_t alignment)
{
    Layout l;
    for (const auto& t : p.model->tensors()) {
        l.predictedWeightBytes += predictedTensorBytes(QuantizeTarget::Gguf, p.plan, t);
        const auto type = plannedType(p, t);
        if (!type)
            continue;
        OutTensor o;
        o.in = &t;
        o.type = *type;
        o.copy = *type == t.dtype;
        const auto bytes = o.copy ? std::optional<uint64_t>(t.bytes) : dtypeByteSize(*type, t.elements());
        if (!bytes)
            continue;
        o.bytes = *bytes;
        l.tensors.push_back(o);
    }
    std::stable_sort(l.tensors.begin(), l.tensors.end(), [](const OutTensor& a, const OutTensor& b) {
        const int la = blockOf(a.in->name), lb = blockOf(b.in->name);
        if (la != lb)
            return la < lb;
        return a.in->name < b.in->name;
    });
    uint64_t shardBytes = 0;
    uint32_t shard = 0;
    bool shardEmpty = true;
    for (auto& o : l.tensors) {
        const uint64_t padded = padTo(o.bytes, alignment);
        if (p.splitMaxBytes > 0 && !shardEmpty && shardBytes + padded > p.splitMaxBytes) {
            ++shard;
            shardBytes = 0;
        }
        o.shard = shard;
        o.offset = shardBytes;
        shardBytes += padded;
        shardEmpty = false;
    }
    l.shards = shard + 1;
    return l;
}

std::vector<fs::path> outputPaths(const QuantizeParams& p, uint32_t shards)
{
    if (p.splitMaxBytes == 0)
        return {p.output};
    std::vector<fs::path> out;
    for (uint32_t i = 0; i < shards; ++i)
        out.push_back(ggufSplitPath(p.output, i, shards));
    return out;
}

bool samePath(const fs::path& a, const fs::path& b)
{
    std::error_code ec;
    if (fs::exists(a, ec) && fs::exists(b, ec)) {
        const bool same = fs::equivalent(a, b, ec);
        if (!ec)
            return same;
    }
    const auto ca = fs::weakly_canonical(a, ec);
    const auto cb = fs::weakly_canonical(b, ec);
    return !ec && ca == cb;
}

std::string humanBytes(uint64_t b)
{
    char buf[64];
    if (b >= (uint64_t{1} << 30))
        std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(uint64_t{1} << 30));
    else if (b >= (uint64_t{1} << 20))
        std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(uint64_t{1} << 20));
    else
        std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(b));
    return buf;
}

// The problems of the model and the plan for the target (no output path, no disk).
std::vector<QuantizeProblem> validatePlan(const QuantizeParams& p, const ImportanceMatrix* importance,
                                          std::vector<std::string>* warnings)
{
    std::vector<QuantizeProblem> problems;
    if (!p.model) {
        problems.push_back({{}, "no model"});
        return problems;
    }
    const Model& model = *p.model;
    const bool gguf = p.target == QuantizeTarget::Gguf;
    if (gguf && model.format() != ModelFormat::Gguf)
        problems.push_back({{},
                            std::string("GGUF output needs a GGUF input; this model is ") +
                                modelFormatName(model.format())});
    if (gguf && model.files().size() > 1)
        problems.push_back({{}, "GGUF output from a split GGUF input is not supported yet"});

    for (const auto& [name, formatName] : p.plan.assignments()) {
        const TensorInfo* t = model.find(name);
        if (!t) {
            problems.push_back({name, "is in the plan but not in the model"});
            continue;
        }
        const auto format = findFormat(formatName);
        if (!format) {
            problems.push_back({name, "unknown format '" + formatName + "'"});
            continue;
        }
        // The matrix the writer quantizes (GGUF input: as stored; checkpoints: one row per output channel).
        const uint64_t rows = t->matrixRows(), cols = t->matrixColumns();
        if (!format->supports(rows, cols)) {
            const auto storage = format->traits().storage;
            const uint32_t block = storage ? dtypeInfo(*storage).blockElements : 0;
            problems.push_back(
                {name, format->name() + " cannot store a row of " + std::to_string(cols) + " values" +
                           (block > 1 ? " (its block of " + std::to_string(block) + " does not divide it)"
                                      : std::string())});
            continue;
        }
        if (!gguf)
            continue; // the checkpoint targets check their formats below (checkpointProblems)
        const auto storage = format->traits().storage;
        if (!storage || dtypeInfo(*storage).ggmlType < 0 ||
            (*storage != t->dtype && !ggml::canQuantize(*storage))) {
            problems.push_back({name, format->name() + " cannot be written to GGUF"});
            continue;
        }
        if (*storage == t->dtype)
            continue;
        if (!isFloatInput(t->dtype)) {
            if (!p.allowRequantize)
                problems.push_back({name, std::string("is already quantized (") + dtypeName(t->dtype) +
                                              "); re-quantizing to " + format->name() +
                                              " needs --allow-requantize"});
            else if (!ggml::canDecode(t->dtype))
                problems.push_back(
                    {name, std::string("cannot decode its stored type ") + dtypeName(t->dtype)});
            else if (warnings)
                warnings->push_back(name + ": re-quantized from " + dtypeName(t->dtype) + " to " +
                                    format->name() + " (quality is lower than from the original weights)");
        }
        if (importance) {
            if (const ImportanceEntry* e = importance->find(name)) {
                const uint64_t matrices = t->shape.size() >= 3 ? t->shape[0] : 1;
                if (e->columns != cols || (e->matrices != 1 && e->matrices != matrices))
                    problems.push_back({name, "its importance entry '" + e->name + "' holds " +
                                                  std::to_string(e->matrices) + " x " +
                                                  std::to_string(e->columns) + " values, the tensor needs " +
                                                  std::to_string(matrices) + " x " + std::to_string(cols)});
            }
        }
    }

    return problems;
}

std::vector<QuantizeProblem> validate(const QuantizeParams& p, const ImportanceMatrix* importance,
                                      std::vector<std::string>* warnings)
{
    std::vector<QuantizeProblem> problems = validatePlan(p, importance, warnings);
    if (p.precomputedCodes && !p.precomputedCodes->empty() && p.target == QuantizeTarget::Gguf)
        problems.push_back({{}, "GPTQ's integer codes cannot be written to GGUF: ggml block types have their own "
                                "grids (plan a ggml type such as Q4_K for GPTQ into GGUF, or use --to gptq, "
                                "compressed-tensors or fake-quant)"});
    if (p.precomputedGgml && p.model)
        for (const auto& [name, blocks] : *p.precomputedGgml) {
            const TensorInfo* t = p.model->find(name);
            const auto format = p.plan.formatOf(name);
            const auto f = format ? findFormat(*format) : nullptr;
            if (!t || !f || f->traits().storage != blocks->type || t->rows() != blocks->rows ||
                t->columns() != blocks->cols || dtypeByteSize(blocks->type, t->elements()) != blocks->bytes.size())
                problems.push_back({name, "GPTQ's ggml blocks do not match the tensor and its planned type"});
        }
    if (!p.model)
        return problems;
    const Model& model = *p.model;
    const bool gguf = p.target == QuantizeTarget::Gguf;
    if (p.output.empty()) {
        problems.push_back({{}, "no output path"});
        return problems;
    }
    std::error_code ec;
    const fs::path folder = p.output.has_parent_path() ? p.output.parent_path() : fs::path(".");
    if (!fs::is_directory(folder, ec))
        problems.push_back({{}, "the output folder " + folder.string() + " does not exist"});

    if (!gguf)
        return problems;
    uint64_t alignment = kDefaultAlignment, headerBytes = 0;
    try {
        const InputHeader h = readInputHeader(model);
        alignment = h.alignment;
        headerBytes = h.bytes;
    } catch (const Error& e) {
        problems.push_back({{}, e.what()});
        return problems;
    }
    const Layout layout = planLayout(p, alignment);
    const auto paths = outputPaths(p, layout.shards);
    for (const auto& out : paths) {
        for (const auto& in : model.files())
            if (samePath(out, in->path()))
                problems.push_back(
                    {{}, "the output " + out.string() + " is the input file " + in->path().string()});
        if (!p.importanceFile.empty() && samePath(out, p.importanceFile))
            problems.push_back({{}, "the output " + out.string() + " is the importance file"});
    }
    uint64_t predicted = 0;
    for (const auto& o : layout.tensors)
        predicted += padTo(o.bytes, alignment);
    // Each shard repeats the metadata; 4 KiB covers the added keys and tensor infos.
    predicted += uint64_t{layout.shards} * (headerBytes + 4096);
    const uint64_t free = freeDiskBytes(p.output);
    if (free < predicted)
        problems.push_back({{},
                            "not enough disk space: the output needs about " + humanBytes(predicted) + ", " +
                                humanBytes(free) + " are free in " + folder.string()});
    return problems;
}

uint32_t ftypeOfDType(DType t)
{
    switch (t) {
    case DType::F32:
        return 0;
    case DType::F16:
        return 1;
    case DType::Q4_0:
        return 2;
    case DType::Q4_1:
        return 3;
    case DType::Q8_0:
        return 7;
    case DType::Q5_0:
        return 8;
    case DType::Q5_1:
        return 9;
    case DType::Q2_K:
        return 10;
    case DType::Q3_K:
        return 12; // Q3_K_M
    case DType::Q4_K:
        return 15; // Q4_K_M
    case DType::Q5_K:
        return 17; // Q5_K_M
    case DType::Q6_K:
        return 18;
    case DType::IQ2_XXS:
        return 19;
    case DType::IQ2_XS:
        return 20;
    case DType::IQ3_XXS:
        return 23;
    case DType::IQ1_S:
        return 24;
    case DType::IQ4_NL:
        return 25;
    case DType::IQ3_S:
        return 26;
    case DType::IQ2_S:
        return 28;
    case DType::IQ4_XS:
        return 30;
    case DType::IQ1_M:
        return 31;
    case DType::BF16:
        return 32;
    case DType::TQ1_0:
        return 36;
    case DType::TQ2_0:
        return 37;
    case DType::MXFP4:
        return 38;
    default:
        return 1;
    }
}

// Drops input pages this job has consumed from the process (they stay in the page cache). Touched pages of
// a file map count as resident memory, so without this the job's resident size would grow to the whole
// model. Only whole pages inside the range are dropped; models are mapped read-only and private, so the
// data reads back from the file if anything touches it again.
void releaseInput(const std::byte* data, uint64_t size)
{
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
    const auto end = (reinterpret_cast<uintptr_t>(data) + size) / page * page;
    if (end > begin)
        ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// One tensor's quantized rows, written batch by batch.
class TensorWriter {
public:
    TensorWriter(const Model& model, JobControl& control, unsigned threads,
                 const ImportanceMatrix* importance, std::atomic<uint64_t>& done, uint64_t total,
                 const PrecomputedGgml* precomputed)
        : m_model(model), m_control(control), m_threads(threads), m_importance(importance), m_done(done),
          m_total(total), m_precomputed(precomputed)
    {
    }

    // Writes one tensor's data and measures, on the sampled rows (tensorreport.h), how the written blocks
    // decode against the input.
    void write(AtomicFile& file, const OutTensor& o, QuantizedTensor& report)
    {
        const TensorInfo& t = *o.in;
        report.bytes = o.bytes;
        report.copied = o.copy;
        if (o.copy) {
            const auto raw = m_model.rawData(t);
            for (uint64_t at = 0; at < raw.size(); at += kCopyChunk) {
                m_control.throwIfCancelled();
                const uint64_t n = std::min<uint64_t>(kCopyChunk, raw.size() - at);
                file.write(raw.data() + at, n);
                releaseInput(raw.data() + at, n);
                progress(n);
            }
            return;
        }
        if (m_precomputed)
            if (const auto it = m_precomputed->find(t.name); it != m_precomputed->end())
                return writePrecomputed(file, o, *it->second, report);
        const uint64_t rows = t.rows(), cols = t.columns();
        const uint64_t rowBytes = *dtypeByteSize(o.type, cols);
        const auto input = m_model.rawData(t);
        const uint64_t inRowBytes = input.size() / std::max<uint64_t>(1, rows);
        // Stacked experts: one importance vector per expert matrix.
        const uint64_t matrices = t.shape.size() >= 3 ? t.shape[0] : 1;
        const uint64_t rowsPerMatrix = matrices > 0 ? rows / matrices : rows;
        const ImportanceEntry* entry = m_importance ? m_importance->find(t.name) : nullptr;
        if (entry && entry->columns != cols)
            entry = nullptr; // validation already refused this
        const uint64_t batchRows = std::max<uint64_t>(1, std::min<uint64_t>(rows, kBatchBytes / rowBytes));
        const uint64_t groupRows = std::max<uint64_t>(1, kGroupValues / cols);
        m_out.resize(static_cast<size_t>(batchRows * rowBytes));
        const uint64_t sampleStride = sqnrRowStride(rows, cols);
        ErrorAccumulator quality;
        for (uint64_t first = 0; first < rows; first += batchRows) {
            m_control.throwIfCancelled();
            const uint64_t count = std::min(batchRows, rows - first);
            // Groups never span two expert matrices (they use different importance vectors).
            std::vector<std::pair<uint64_t, uint64_t>> groups;
            for (uint64_t r = first; r < first + count;) {
                const uint64_t matrixEnd = (r / rowsPerMatrix + 1) * rowsPerMatrix;
                const uint64_t end = std::min({r + groupRows, first + count, matrixEnd});
                groups.emplace_back(r, end - r);
                r = end;
            }
            std::atomic<size_t> next{0};
            std::vector<ErrorAccumulator> groupQuality(groups.size());
            const unsigned workers =
                static_cast<unsigned>(std::min<size_t>(m_threads, std::max<size_t>(1, groups.size())));
            ThreadPool::instance().runWorkers(workers, [&](unsigned) {
                std::vector<float> scratch, decoded;
                for (;;) {
                    const size_t g = next.fetch_add(1, std::memory_order_relaxed);
                    if (g >= groups.size() || m_control.cancelled())
                        return;
                    const auto [r, n] = groups[g];
                    scratch.resize(static_cast<size_t>(n * cols));
                    m_model.decodeRows(t, r, n, scratch.data());
                    const float* imp = nullptr;
                    if (entry) {
                        const uint64_t m = entry->matrices > 1 ? r / rowsPerMatrix : 0;
                        imp = entry->matrix(m).data();
                    }
                    ggml::quantize(o.type, scratch.data(), n, cols, m_out.data() + (r - first) * rowBytes,
                                   imp);
                    decoded.resize(static_cast<size_t>(cols));
                    for (uint64_t row = (r + sampleStride - 1) / sampleStride * sampleStride; row < r + n;
                         row += sampleStride) {
                        ggml::decode(o.type, m_out.data() + (row - first) * rowBytes, cols, decoded.data());
                        groupQuality[g].add(scratch.data() + (row - r) * cols, decoded.data(), 1, cols);
                    }
                    progress(n * rowBytes);
                }
            });
            m_control.throwIfCancelled();
            for (const auto& q : groupQuality) // in group order: the sums do not depend on the threads
                quality.merge(q);
            file.write(m_out.data(), static_cast<size_t>(count * rowBytes));
            releaseInput(input.data() + first * inRowBytes, count * inRowBytes);
        }
        setQuality(report, quality);
    }

private:
    // GPTQ's blocks (validated against the tensor and its type), with the same sampled quality report.
    void writePrecomputed(AtomicFile& file, const OutTensor& o, const PrecomputedGgmlBlocks& blocks,
                          QuantizedTensor& report)
    {
        const TensorInfo& t = *o.in;
        const uint64_t rows = t.rows(), cols = t.columns();
        if (blocks.type != o.type || blocks.bytes.size() != o.bytes || blocks.rows != rows || blocks.cols != cols)
            throw Error(ErrorCode::BadValue, t.name + ": GPTQ's ggml blocks do not match the planned type");
        const uint64_t rowBytes = o.bytes / std::max<uint64_t>(1, rows);
        ErrorAccumulator quality;
        std::vector<float> in(static_cast<size_t>(cols)), decoded(static_cast<size_t>(cols));
        const uint64_t stride = sqnrRowStride(rows, cols);
        for (uint64_t row = 0; row < rows; row += stride) {
            m_model.decodeRows(t, row, 1, in.data());
            ggml::decode(o.type, blocks.bytes.data() + row * rowBytes, cols, decoded.data());
            quality.add(in.data(), decoded.data(), 1, cols);
        }
        for (uint64_t at = 0; at < o.bytes; at += kCopyChunk) {
            m_control.throwIfCancelled();
            const uint64_t n = std::min<uint64_t>(kCopyChunk, o.bytes - at);
            file.write(blocks.bytes.data() + at, n);
            progress(n);
        }
        setQuality(report, quality);
    }

    void progress(uint64_t bytes)
    {
        const uint64_t d = m_done.fetch_add(bytes, std::memory_order_relaxed) + bytes;
        m_control.reportBytes(d, m_total, "quantizing");
    }

    const Model& m_model;
    JobControl& m_control;
    unsigned m_threads;
    const ImportanceMatrix* m_importance;
    std::atomic<uint64_t>& m_done;
    uint64_t m_total;
    const PrecomputedGgml* m_precomputed;
    std::vector<uint8_t> m_out;
};

std::string problemList(const std::vector<QuantizeProblem>& problems)
{
    std::string s = "cannot quantize:";
    for (const auto& p : problems)
        s += "\n  " + p.toString();
    return s;
}

void writeGguf(const QuantizeParams& p, const ImportanceMatrix* importance, JobControl& control,
               QuantizeResult& result)
{
    const Model& model = *p.model;
    const InputHeader in = readInputHeader(model);
    const Layout layout = planLayout(p, in.alignment);
    result.predictedWeightBytes = layout.predictedWeightBytes;
    const auto paths = outputPaths(p, layout.shards);

    // The KV section as llama-quantize builds it: the input's pairs in order, minus the keys it sets
    // again (which move to the end) and the split keys of the input.
    std::vector<std::pair<std::string, std::string>> appended; // key, encoded entry
    {
        Bytes b;
        b.putKeyU32("general.quantization_version", kQuantizationVersion);
        appended.emplace_back("general.quantization_version", b.data());
    }
    {
        Bytes b;
        b.putKeyU32("general.file_type", ggufFileType(p.plan, model));
        appended.emplace_back("general.file_type", b.data());
    }
    if (importance) {
        // The file name only, not the folder: a published model should not carry the author's paths.
        Bytes f;
        f.putKeyString("quantize.imatrix.file", p.importanceFile.filename().string());
        appended.emplace_back("quantize.imatrix.file", f.data());
        if (!importance->datasets().empty()) {
            Bytes d;
            d.putKeyString("quantize.imatrix.dataset", importance->datasets().front());
            appended.emplace_back("quantize.imatrix.dataset", d.data());
        }
        Bytes e;
        e.putKeyU32("quantize.imatrix.entries_count", static_cast<uint32_t>(importance->entries().size()));
        appended.emplace_back("quantize.imatrix.entries_count", e.data());
        if (importance->chunkCount() > 0) {
            Bytes c;
            c.putKeyU32("quantize.imatrix.chunks_count", static_cast<uint32_t>(importance->chunkCount()));
            appended.emplace_back("quantize.imatrix.chunks_count", c.data());
        }
    }
    std::vector<std::span<const std::byte>> kept;
    for (const auto& kv : in.kvs) {
        if (kv.key == "split.no" || kv.key == "split.count" || kv.key == "split.tensors.count")
            continue;
        if (std::any_of(appended.begin(), appended.end(), [&](const auto& a) { return a.first == kv.key; }))
            continue;
        kept.push_back(kv.bytes);
    }

    AtomicFileSet set;
    std::vector<AtomicFile*> files;
    for (const auto& path : paths)
        files.push_back(&set.add(path));

    uint64_t total = 0;
    for (const auto& o : layout.tensors)
        total += o.bytes;
    std::atomic<uint64_t> done{0};
    control.reportBytes(0, total, "quantizing");
    const unsigned threads = resolveThreads(p.threads);
    TensorWriter writer(model, control, threads, importance, done, total, p.precomputedGgml.get());
    // The per-tensor report, in the model's order (the file's order is llama-quantize's).
    std::map<const TensorInfo*, size_t> slotOf;
    result.tensors.clear();
    for (const auto& t : model.tensors()) {
        slotOf[&t] = result.tensors.size();
        QuantizedTensor q;
        q.name = t.name;
        const auto planned = p.plan.formatOf(t.name);
        const auto f = planned ? findFormat(*planned) : nullptr;
        q.format = f ? f->name() : std::string(dtypeName(t.dtype));
        result.tensors.push_back(std::move(q));
    }

    for (uint32_t s = 0; s < layout.shards; ++s) {
        Bytes h;
        h.putRaw(std::as_bytes(std::span("GGUF", 4)));
        h.put<uint32_t>(3);
        uint64_t count = 0;
        for (const auto& o : layout.tensors)
            count += o.shard == s;
        h.put<uint64_t>(count);
        const bool split = p.splitMaxBytes > 0;
        h.put<uint64_t>(kept.size() + appended.size() + (split ? 3 : 0));
        for (const auto& kv : kept)
            h.putRaw(kv);
        for (const auto& [key, bytes] : appended)
            h.putRaw(std::as_bytes(std::span(bytes.data(), bytes.size())));
        if (split) {
            h.putString("split.no");
            h.put<uint32_t>(GgufU16);
            h.put<uint16_t>(static_cast<uint16_t>(s));
            h.putString("split.count");
            h.put<uint32_t>(GgufU16);
            h.put<uint16_t>(static_cast<uint16_t>(layout.shards));
            h.putString("split.tensors.count");
            h.put<uint32_t>(GgufI32);
            h.put<int32_t>(static_cast<int32_t>(layout.tensors.size()));
        }
        for (const auto& o : layout.tensors) {
            if (o.shard != s)
                continue;
            h.putString(o.in->name);
            // ggml drops trailing dimensions of 1 (ggml_n_dims); ne[] is innermost first.
            std::vector<uint64_t> ne(o.in->shape.rbegin(), o.in->shape.rend());
            if (ne.empty())
                ne.push_back(1);
            while (ne.size() > 1 && ne.back() == 1)
                ne.pop_back();
            h.put<uint32_t>(static_cast<uint32_t>(ne.size()));
            for (uint64_t d : ne)
                h.put<uint64_t>(d);
            h.put<uint32_t>(static_cast<uint32_t>(dtypeInfo(o.type).ggmlType));
            h.put<uint64_t>(o.offset);
        }
        AtomicFile& file = *files[s];
        file.write(h.data());
        file.writeZeros(padTo(h.data().size(), in.alignment) - h.data().size());
        for (const auto& o : layout.tensors) {
            if (o.shard != s)
                continue;
            writer.write(file, o, result.tensors[slotOf.at(o.in)]);
            file.writeZeros(padTo(o.bytes, in.alignment) - o.bytes);
            result.weightBytesWritten += o.bytes;
        }
        result.bytesWritten += file.bytesWritten();
    }
    control.throwIfCancelled();
    set.commit();
    result.files = paths;
}

} // namespace

const char* quantizeTargetName(QuantizeTarget target)
{
    switch (target) {
    case QuantizeTarget::Gguf:
        return "gguf";
    case QuantizeTarget::CompressedTensors:
        return "compressed-tensors";
    case QuantizeTarget::Gptq:
        return "gptq";
    case QuantizeTarget::FakeQuant:
        return "fake-quant";
    }
    return "?";
}

std::optional<QuantizeTarget> quantizeTargetFromName(std::string_view name)
{
    for (auto t : {QuantizeTarget::Gguf, QuantizeTarget::CompressedTensors, QuantizeTarget::Gptq,
                   QuantizeTarget::FakeQuant})
        if (name == quantizeTargetName(t))
            return t;
    return std::nullopt;
}

std::string QuantizeProblem::toString() const
{
    return tensor.empty() ? reason : "tensor '" + tensor + "': " + reason;
}

namespace {
std::vector<QuantizeProblem> methodProblems(const QuantizeParams& p);
} // namespace

std::vector<QuantizeProblem> validateQuantize(const QuantizeParams& params)
{
    std::optional<ImportanceMatrix> importance;
    std::vector<QuantizeProblem> early;
    if (!params.importanceFile.empty()) {
        try {
            importance = ImportanceMatrix::load(params.importanceFile);
        } catch (const std::exception& e) {
            early.push_back({{}, std::string("cannot read the importance file: ") + e.what()});
        }
    }
    auto problems = validate(params, importance ? &*importance : nullptr, nullptr);
    early.insert(early.end(), problems.begin(), problems.end());
    for (auto& p : methodProblems(params))
        early.push_back(std::move(p));
    return early;
}

namespace {
CheckpointKind checkpointKindOf(QuantizeTarget target)
{
    return target == QuantizeTarget::CompressedTensors ? CheckpointKind::CompressedTensors
           : target == QuantizeTarget::Gptq            ? CheckpointKind::Gptq
                                                       : CheckpointKind::FakeQuant;
}
} // namespace

std::vector<std::string> quantizeTargetProblems(QuantizeTarget target, const Model& model, const Plan& plan,
                                                bool allowRequantize)
{
    QuantizeParams p;
    p.model = std::shared_ptr<const Model>(&model, [](const Model*) {}); // borrowed for the call
    p.plan = plan;
    p.target = target;
    p.allowRequantize = allowRequantize;
    std::vector<std::string> out;
    // The wrong kind of input says it all; the per-tensor reasons would only repeat it.
    if (target == QuantizeTarget::Gguf && model.format() != ModelFormat::Gguf)
        return {std::string("GGUF output needs a GGUF input; this model is ") + modelFormatName(model.format())};
    if (target != QuantizeTarget::Gguf && model.format() != ModelFormat::Safetensors)
        return {std::string("checkpoints are written from safetensors models; this model is ") +
                modelFormatName(model.format())};
    for (const auto& problem : validatePlan(p, nullptr, nullptr))
        out.push_back(problem.toString());
    if (target != QuantizeTarget::Gguf)
        for (auto& problem : checkpointProblems(checkpointKindOf(target), model, plan))
            out.push_back(std::move(problem));
    return out;
}

uint64_t predictedTensorBytes(QuantizeTarget target, const Plan& plan, const TensorInfo& tensor)
{
    if (target == QuantizeTarget::Gguf)
        return plannedBytes(plan, tensor);
    return checkpointTensorBytes(checkpointKindOf(target), plan, tensor);
}

std::filesystem::path ggufSplitPath(const std::filesystem::path& output, uint32_t index, uint32_t count)
{
    std::string base = output.string();
    if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0)
        base.resize(base.size() - 5);
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, "-%05u-of-%05u.gguf", index + 1, count);
    return base + suffix;
}

uint32_t ggufFileType(const Plan& plan, const Model& model)
{
    const std::string& preset = plan.preset();
    if (preset == "llama.cpp-Q4_K_M")
        return 15;
    if (preset == "llama.cpp-Q5_K_M")
        return 17;
    if (preset == "llama.cpp-Q3_K_M")
        return 12;
    // "Mostly X": the type holding the most weights among the planned ones.
    std::map<DType, uint64_t> weights;
    for (const auto& t : model.tensors()) {
        const auto name = plan.formatOf(t.name);
        const auto f = name ? findFormat(*name) : nullptr;
        if (f && f->traits().storage)
            weights[*f->traits().storage] += t.elements();
    }
    if (weights.empty())
        return 1;
    const auto best = std::max_element(weights.begin(), weights.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
    return ftypeOfDType(best->first);
}

namespace {

// The method of a run: --method when given, else the plan's tier methods (core/plan/plan.h): one non-RTN
// method per run (a plan with GPTQ and AWQ tiers is refused in methodProblems).
QuantMethod effectiveMethod(const QuantizeParams& p, bool* mixed = nullptr)
{
    if (p.method != QuantMethod::Rtn)
        return p.method;
    QuantMethod found = QuantMethod::Rtn;
    for (const auto& [tensor, format] : p.plan.assignments()) {
        const QuantMethod m = p.plan.tierMethod(format);
        if (m == QuantMethod::Rtn || m == found)
            continue;
        if (found != QuantMethod::Rtn && mixed)
            *mixed = true;
        found = m;
    }
    return found;
}

// The tensors the method pass quantizes: with tier methods in the plan, those of the tiers that name the
// method; without any, every planned tensor (the method applies to the whole plan).
Plan methodPlan(const Plan& plan, QuantMethod method)
{
    if (plan.tierMethods().empty())
        return plan;
    Plan out = plan;
    out.clearAssignments();
    for (const auto& [tensor, format] : plan.assignments())
        if (plan.tierMethod(format) == method)
            out.assign(tensor, format);
    return out;
}

bool hasPrecomputed(const QuantizeParams& p)
{
    return (p.precomputedCodes && !p.precomputedCodes->empty()) || (p.precomputedGgml && !p.precomputedGgml->empty());
}

std::vector<QuantizeProblem> methodProblems(const QuantizeParams& params)
{
    std::vector<QuantizeProblem> out;
    bool mixed = false;
    QuantizeParams p = params;
    p.method = effectiveMethod(params, &mixed);
    if (mixed)
        out.push_back({{}, "the plan has GPTQ and AWQ tiers: one method per run (quantize with one, or set the "
                           "other tiers to round-to-nearest)"});
    if (p.method == QuantMethod::Gptq && !hasPrecomputed(p)) {
        if (p.calibrationFile.empty() && p.calibrationTokens.empty() && p.gptqHessiansFile.empty())
            out.push_back({{}, "GPTQ needs a calibration text (--calibration FILE) or stored Hessians "
                               "(--hessians FILE.h5)"});
    }
    if (p.method == QuantMethod::Awq) {
        if (p.calibrationFile.empty() && p.calibrationTokens.empty())
            out.push_back({{}, "AWQ needs a calibration text (--calibration FILE)"});
        if (!p.importanceFile.empty())
            out.push_back({{}, "AWQ does not combine with an importance matrix (it was measured on the "
                               "unscaled inputs)"});

    }
    return out;
}

std::shared_ptr<const Model> awqTransformedModel(const QuantizeParams& p, JobControl& control,
                                                 QuantizeResult& result)
{
    std::vector<std::string>& notes = result.methodNotes;
    AwqModelParams a;
    a.model = p.model;
    a.plan = methodPlan(p.plan, QuantMethod::Awq);
    a.textFile = p.calibrationFile;
    a.maxChunks = p.calibrationChunks;
    a.ctx = p.calibrationCtx;
    a.tokens = p.calibrationTokens;
    a.options.threads = p.threads;
    const AwqModelResult r = runAwq(a, &control);
    char line[256];
    std::snprintf(line, sizeof line, "AWQ calibration: %u chunks of %u tokens, %zu tensors transformed, %.1f s",
                  r.chunks, r.ctx, r.transformedTensors.size(), r.seconds);
    notes.push_back(line);
    for (const auto& g : r.groups) {
        std::snprintf(line, sizeof line,
                      "layer %u %s (%s): %s alpha %.2f%s, clipped %d, output error %.4g -> %.4g", g.layer,
                      g.group.c_str(), g.format.c_str(), g.scaled ? "scaled" : "not scaled", g.alpha,
                      g.duo ? " (duo)" : "", g.clippedTensors, g.errorRtn, g.errorAfter);
        notes.push_back(line);
    }
    for (const auto& n : r.notes)
        notes.push_back(n);
    result.awqGroups = r.groups;
    return r.transformed;
}

} // namespace

Plan gptqPassPlan(const QuantizeParams& params, std::vector<std::string>* notes)
{
    Plan plan = methodPlan(params.plan, effectiveMethod(params));
    std::map<std::string, size_t> leftOut; // format -> tensors
    for (const auto& [tensor, format] : params.plan.assignments()) {
        if (!plan.formatOf(tensor))
            continue;
        const auto c = gptqConfigForFormat(format);
        const auto f = findFormat(format);
        if (!c && f && f->traits().kind != FormatKind::Float)
            ++leftOut[format];
        else if (c->ggml && params.target != QuantizeTarget::Gguf) {
            ++leftOut[format];
            plan.unassign(tensor);
        }
    }
    if (notes)
        for (const auto& [format, count] : leftOut)
            notes->push_back("GPTQ: " + std::to_string(count) + " tensor(s) in " + format +
                             " rounded to nearest (" +
                             (gptqConfigForFormat(format) ? "ggml blocks from GPTQ are written only to GGUF"
                                                          : quantMethodProblem(QuantMethod::Gptq, format)) +
                             ")");
    return plan;
}

QuantizeJob::QuantizeJob(QuantizeParams params) : BasicJob("Quantizing", std::move(params)) {}

void QuantizeJob::execute(JobControl& control)
{
    const auto start = std::chrono::steady_clock::now();
    m_result = {};
    control.report(0, "checking");
    std::optional<ImportanceMatrix> importance;
    if (!m_params.importanceFile.empty())
        importance = ImportanceMatrix::load(m_params.importanceFile, &control);
    auto problems = validate(m_params, importance ? &*importance : nullptr, &m_result.warnings);
    for (auto& p : methodProblems(m_params))
        problems.push_back(std::move(p));
    if (!problems.empty())
        throw Error(ErrorCode::BadValue, problemList(problems));
    control.throwIfCancelled();
    // AWQ: the calibration pre-pass, then the writers read the transformed weights from an overlay model.
    m_params.method = effectiveMethod(m_params);
    QuantizeParams awqParams;
    if (m_params.method == QuantMethod::Awq) {
        awqParams = m_params;
        awqParams.model = awqTransformedModel(m_params, control, m_result);
    }
    // GPTQ without codes from the caller: the sequential calibration pass here (the GUI's path; the CLI
    // runs GptqModelJob first to report per-tensor proxy errors).
    if (m_params.method == QuantMethod::Gptq && !hasPrecomputed(m_params)) {
        GptqModelParams g;
        g.model = m_params.model;
        g.plan = gptqPassPlan(m_params, &m_result.methodNotes);
        if (importance && m_params.target == QuantizeTarget::Gguf)
            g.importance = std::make_shared<const ImportanceMatrix>(*importance);
        g.textFile = m_params.calibrationFile;
        g.tokens = m_params.calibrationTokens;
        if (!m_params.gptqHessiansFile.empty())
            g.hessians = std::make_shared<const ActivationStats>(
                loadActivationStats(m_params.gptqHessiansFile, /*withHessians=*/true, &control));
        g.ctx = m_params.calibrationCtx;
        g.maxSequences = m_params.calibrationChunks;
        g.threads = m_params.threads;
        control.report(0, "GPTQ calibration");
        const GptqModelResult r = gptqQuantizeModel(g, &control);
        m_result.methodNotes.push_back("GPTQ calibration: " + std::to_string(r.sequences) + " sequences of " +
                                       std::to_string(r.ctx) + " tokens, " + std::to_string(r.tensors.size()) +
                                       " tensors quantized with GPTQ");
        m_params.precomputedCodes = precomputedCodes(r);
        m_params.precomputedGgml = precomputedGgml(r);
    }
    const QuantizeParams& params = m_params.method == QuantMethod::Awq ? awqParams : m_params;

    // The one dispatch point for the output formats. The compressed-tensors, GPTQ and fake-quant writers
    // live in core/io/ and are wired in here.
    switch (params.target) {
    case QuantizeTarget::Gguf:
        writeGguf(params, importance ? &*importance : nullptr, control, m_result);
        break;
    case QuantizeTarget::CompressedTensors:
    case QuantizeTarget::Gptq:
    case QuantizeTarget::FakeQuant: {
        const CheckpointKind kind = checkpointKindOf(params.target);
        const auto issues = checkpointProblems(kind, *params.model, params.plan);
        if (!issues.empty()) {
            std::string text = std::string("cannot write ") + quantizeTargetName(params.target) + ":";
            for (const auto& i : issues)
                text += "\n  " + i;
            throw Error(ErrorCode::BadValue, text);
        }
        CheckpointWriteReport report;
        const PrecomputedCodes* codes = m_params.precomputedCodes.get();
        if (kind == CheckpointKind::CompressedTensors)
            report = writeCompressedTensors(*params.model, params.plan, params.output, &control, codes);
        else if (kind == CheckpointKind::Gptq)
            report = writeGptqCheckpoint(*params.model, params.plan, params.output, &control, codes);
        else
            report = writeFakeQuant(*params.model, params.plan, params.output, &control, codes);
        m_result.bytesWritten = report.bytesWritten;
        m_result.predictedWeightBytes = report.predictedWeightBytes;
        m_result.weightBytesWritten = report.weightBytesWritten;
        m_result.files = report.files;
        m_result.warnings.insert(m_result.warnings.end(), report.warnings.begin(), report.warnings.end());
        m_result.tensors = std::move(report.tensors);
        break;
    }
    }
    m_result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    control.report(1, "done");
}

} // namespace qs
